//! q3: a regular (unwindowed) inner join of auctions in category 10 with their sellers in
//! OR, ID or CA. Both inputs are insert-only, so the join's output is too: each matching
//! pair is emitted once, when its second side arrives.

use crate::event::Event;
use crate::query::int;
use crate::row::{Row, Value};
use serde::{Deserialize, Serialize};
use snapflow_engine::{Output, Stream};
use snapflow_operators::{FlatMapExt, ListState, ProcessExt};

/// The two sides of the join, reduced to the columns the query reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Side {
    Auction { id: usize, seller: usize },
    Person(Seller),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Seller {
    id: usize,
    name: String,
    city: String,
    state: String,
}

/// The generator writes US states in lower case (see the peer's q3.sql).
fn in_states(state: &str) -> bool {
    matches!(state, "or" | "id" | "ca")
}

fn row(p: &Seller, auction: usize) -> Row {
    Row(vec![
        Value::Str(p.name.clone()),
        Value::Str(p.city.clone()),
        Value::Str(p.state.clone()),
        int(auction),
    ])
}

/// Joined state per person id: the persons (one in Nexmark) and the auctions they sell.
type JoinState = (ListState<Seller>, ListState<usize>);

pub(crate) fn build(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<Side>| match e {
            Event::Auction(a) if a.category == 10 => out.push(Side::Auction {
                id: a.id,
                seller: a.seller,
            }),
            Event::Person(p) if in_states(&p.state) => out.push(Side::Person(Seller {
                id: p.id,
                name: p.name,
                city: p.city,
                state: p.state,
            })),
            _ => {}
        })
        .name("q3-select")
        .key_by(|s: &Side| match s {
            Side::Auction { seller, .. } => *seller,
            Side::Person(p) => p.id,
        })
        .process(
            |_, side: Side, (persons, auctions): &mut JoinState, out: &mut Output<Row>| {
                match side {
                    Side::Auction { id, .. } => {
                        for p in persons.get() {
                            out.push(row(p, id));
                        }
                        auctions.add(id);
                    }
                    Side::Person(p) => {
                        for &id in auctions.get() {
                            out.push(row(&p, id));
                        }
                        persons.add(p);
                    }
                }
                Ok(())
            },
        )
        .name("q3-join")
}
