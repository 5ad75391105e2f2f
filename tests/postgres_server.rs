//! The private PostgreSQL server that the sink tests use: it starts with two-phase commit
//! enabled, keeps committed and prepared transactions across a stop and a crash, runs
//! alongside another one, and is gone once dropped, also when a test panics.

#[path = "../examples/support/pg_server.rs"]
mod pg_server;

use std::net::TcpStream;
use std::time::Instant;

use anyhow::Result;
use pg_server::PgServer;
use postgres::{Client, NoTls};

fn rows(client: &mut Client) -> Result<Vec<(i64, String)>> {
    Ok(client
        .query("SELECT id, v FROM t ORDER BY id", &[])?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

fn prepared(client: &mut Client) -> Result<Vec<String>> {
    Ok(client
        .query("SELECT gid FROM pg_prepared_xacts ORDER BY gid", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

#[test]
fn committed_rows_survive_a_stop_and_connections_fail_while_stopped() -> Result<()> {
    let started = Instant::now();
    let mut server = PgServer::start()?;
    eprintln!("PgServer::start took {:?}", started.elapsed());
    let url = server.url();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/snapflow", server.port())
    );

    let mut client = Client::connect(&url, NoTls)?;
    let setting = |client: &mut Client, name: &str| -> Result<String> {
        Ok(client.query_one(&format!("SHOW {name}"), &[])?.get(0))
    };
    assert_eq!(setting(&mut client, "max_prepared_transactions")?, "64");
    assert_eq!(setting(&mut client, "fsync")?, "on");
    assert_eq!(setting(&mut client, "listen_addresses")?, "127.0.0.1");
    assert_eq!(
        client
            .query_one("SELECT current_database()", &[])?
            .get::<_, String>(0),
        "snapflow"
    );

    client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)")?;
    client.batch_execute(
        "BEGIN; INSERT INTO t VALUES (1, 'one'), (2, 'two'); PREPARE TRANSACTION 'x'",
    )?;
    assert_eq!(
        rows(&mut client)?,
        vec![],
        "prepared rows are not visible yet"
    );
    assert_eq!(prepared(&mut client)?, vec!["x".to_owned()]);
    client.batch_execute("COMMIT PREPARED 'x'")?;
    assert_eq!(prepared(&mut client)?, Vec::<String>::new());
    let committed = vec![(1, "one".to_owned()), (2, "two".to_owned())];
    assert_eq!(rows(&mut client)?, committed);
    drop(client);

    server.stop()?;
    assert!(!server.is_running());
    assert!(
        Client::connect(&url, NoTls).is_err(),
        "a stopped server accepted a connection"
    );
    assert!(
        server.stop().is_err(),
        "stopping a stopped server succeeded"
    );

    server.start_again()?;
    assert_eq!(server.url(), url, "the port changed across a restart");
    let twice = format!("{:#}", server.start_again().unwrap_err());
    assert!(
        twice.contains("pg_ctl") && twice.contains("postmaster.pid"),
        "starting a running server should fail quoting the server log, not: {twice}"
    );
    assert!(
        server.is_running(),
        "a failed second start stopped the server"
    );
    let mut client = Client::connect(&url, NoTls)?;
    assert_eq!(rows(&mut client)?, committed);
    Ok(())
}

/// What a two-phase sink relies on: a prepared transaction outlives a crash of the server and
/// can be committed (or rolled back) by a later session.
#[test]
fn a_prepared_transaction_survives_an_immediate_shutdown() -> Result<()> {
    let mut server = PgServer::start()?;
    let mut client = Client::connect(&server.url(), NoTls)?;
    client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)")?;
    client.batch_execute("BEGIN; INSERT INTO t VALUES (1, 'kept'); PREPARE TRANSACTION 'a'")?;
    client.batch_execute("BEGIN; INSERT INTO t VALUES (2, 'dropped'); PREPARE TRANSACTION 'b'")?;
    client.batch_execute("BEGIN; INSERT INTO t VALUES (3, 'open')")?;

    server.kill()?;
    assert!(client.is_closed() || client.simple_query("SELECT 1").is_err());
    drop(client);
    assert!(Client::connect(&server.url(), NoTls).is_err());

    server.start_again()?;
    let mut client = Client::connect(&server.url(), NoTls)?;
    assert_eq!(prepared(&mut client)?, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(rows(&mut client)?, vec![], "nothing was committed");
    // Each on its own: neither may run inside a (multi-statement, implicit) transaction block.
    client.batch_execute("COMMIT PREPARED 'a'")?;
    client.batch_execute("ROLLBACK PREPARED 'b'")?;
    assert_eq!(rows(&mut client)?, vec![(1, "kept".to_owned())]);

    server.restart()?;
    let mut client = Client::connect(&server.url(), NoTls)?;
    assert_eq!(rows(&mut client)?, vec![(1, "kept".to_owned())]);
    assert_eq!(prepared(&mut client)?, Vec::<String>::new());
    Ok(())
}

#[test]
fn two_servers_run_side_by_side() -> Result<()> {
    let a = PgServer::start()?;
    let b = PgServer::start()?;
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
    for (server, value) in [(&a, "a"), (&b, "b")] {
        let mut client = Client::connect(&server.url(), NoTls)?;
        client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)")?;
        client.execute("INSERT INTO t VALUES (1, $1)", &[&value])?;
    }
    for (server, value) in [(&a, "a"), (&b, "b")] {
        let mut client = Client::connect(&server.url(), NoTls)?;
        assert_eq!(rows(&mut client)?, vec![(1, value.to_owned())]);
    }
    Ok(())
}

#[test]
fn a_dropped_server_is_stopped_and_removed_even_after_a_panic() -> Result<()> {
    let server = PgServer::start()?;
    let (port, dir) = (server.port(), server.data_dir());
    let panicked = std::thread::spawn(move || {
        let _server = server;
        panic!("a test fails while its server runs");
    })
    .join();
    assert!(panicked.is_err());
    // The port itself, not a database connection: a server whose directory was removed under
    // it still listens, but refuses to open a database.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on port {port} after the server's owner panicked"
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());
    Ok(())
}
