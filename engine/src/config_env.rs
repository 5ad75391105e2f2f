//! Defaults of [`JobConfig`](crate::JobConfig) that the environment sets, so that a whole test
//! suite or deployment can switch a setting without touching each job (as Flink's
//! `flink-conf.yaml` does for every job of a cluster). A setting made in code wins.
//!
//! Parsing is pure ([`parse_switch`], [`incremental_default`]); only [`from_process`] reads
//! the process's environment.

use crate::error::BuildError;
use std::ffi::OsString;

/// The environment variable that sets whether checkpoints are incremental when the job's
/// configuration does not say (`JobConfig::with_incremental_checkpoints`): `on`/`true`/`1` or
/// `off`/`false`/`0`, in any case. Unset, checkpoints are incremental. Any other value
/// refuses the job at start.
pub const INCREMENTAL_CHECKPOINTS_ENV: &str = "SNAPFLOW_INCREMENTAL_CHECKPOINTS";

/// What a switch variable may hold, for the error message.
const SWITCH_VALUES: &str = "on, off, true, false, 1 or 0";

/// `Some(true)` for `on`, `true` or `1`, `Some(false)` for `off`, `false` or `0` (letters in
/// any case), `None` for anything else, the empty string and surrounding spaces included.
pub(crate) fn parse_switch(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Some(true),
        "off" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Whether checkpoints are incremental by default, given the value of
/// [`INCREMENTAL_CHECKPOINTS_ENV`] (`None`: unset): on when unset.
///
/// # Errors
/// [`BuildError::InvalidEnvironment`] naming the variable and its value when the value is not
/// a switch (see [`parse_switch`]) or not UTF-8.
pub(crate) fn incremental_default(value: Option<OsString>) -> Result<bool, BuildError> {
    let Some(value) = value else {
        return Ok(true);
    };
    value
        .to_str()
        .and_then(parse_switch)
        .ok_or_else(|| BuildError::InvalidEnvironment {
            variable: INCREMENTAL_CHECKPOINTS_ENV,
            value: value.to_string_lossy().into_owned(),
            expected: SWITCH_VALUES,
        })
}

/// [`incremental_default`] of this process's environment.
///
/// # Errors
/// As [`incremental_default`].
pub(crate) fn from_process() -> Result<bool, BuildError> {
    incremental_default(std::env::var_os(INCREMENTAL_CHECKPOINTS_ENV))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_parse_in_any_case() {
        for on in ["on", "ON", "On", "true", "TRUE", "1"] {
            assert_eq!(parse_switch(on), Some(true), "{on}");
        }
        for off in ["off", "OFF", "false", "False", "0"] {
            assert_eq!(parse_switch(off), Some(false), "{off}");
        }
    }

    #[test]
    fn anything_else_is_not_a_switch() {
        for bad in ["", " on", "off ", "yes", "no", "2", "-1", "enabled", "o"] {
            assert_eq!(parse_switch(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unset_means_incremental_and_a_set_value_decides() {
        assert!(incremental_default(None).unwrap());
        assert!(!incremental_default(Some("off".into())).unwrap());
        assert!(!incremental_default(Some("0".into())).unwrap());
        assert!(incremental_default(Some("true".into())).unwrap());
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_variable_and_the_value() {
        let error = incremental_default(Some("of".into())).unwrap_err();
        assert!(matches!(
            &error,
            BuildError::InvalidEnvironment { variable, value, .. }
                if *variable == INCREMENTAL_CHECKPOINTS_ENV && value == "of"
        ));
        let message = error.to_string();
        assert!(
            message.contains("SNAPFLOW_INCREMENTAL_CHECKPOINTS"),
            "{message}"
        );
        assert!(message.contains("\"of\""), "{message}");
        assert!(incremental_default(Some(String::new().into())).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStringExt;
        let error = incremental_default(Some(OsString::from_vec(vec![b'o', 0xff]))).unwrap_err();
        assert!(matches!(error, BuildError::InvalidEnvironment { .. }));
    }
}
