//! The validated kernel table id.

use rtpengine_common::MAX_TABLES;

/// A forwarding table id, `0..MAX_TABLES` (upstream's `--table`). Upstream
/// spells "no kernel forwarding" as a negative number; here that is
/// `Option::<TableId>::None`, decided once when the option is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(u32);

/// A table id outside `0..MAX_TABLES`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel table {0} out of range 0..{max}", max = MAX_TABLES - 1)]
pub struct TableOutOfRange(pub i64);

impl TableId {
    /// Table `id`, if it exists.
    pub fn new(id: u32) -> Result<TableId, TableOutOfRange> {
        if id < MAX_TABLES {
            Ok(TableId(id))
        } else {
            Err(TableOutOfRange(i64::from(id)))
        }
    }

    /// Upstream's `--table` value: negative means userspace only.
    pub fn from_option(value: i64) -> Result<Option<TableId>, TableOutOfRange> {
        if value < 0 {
            return Ok(None);
        }
        let id = u32::try_from(value).map_err(|_| TableOutOfRange(value))?;
        TableId::new(id)
            .map(Some)
            .map_err(|_| TableOutOfRange(value))
    }

    /// The number, as stored in the maps.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for TableId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: u32 = s
            .parse()
            .map_err(|_| format!("'{s}' is not a table number"))?;
        TableId::new(n).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_checked_once() {
        assert_eq!(TableId::new(0).map(TableId::get), Ok(0));
        assert_eq!(TableId::new(63).map(TableId::get), Ok(63));
        assert!(TableId::new(64).is_err());
        assert_eq!(TableId::from_option(-1), Ok(None));
        assert_eq!(TableId::from_option(-100), Ok(None));
        assert_eq!(TableId::from_option(5), Ok(TableId::new(5).ok()));
        assert!(TableId::from_option(64).is_err());
        assert!(TableId::from_option(i64::MAX).is_err());
        assert!("64".parse::<TableId>().is_err());
        assert!("x".parse::<TableId>().is_err());
        assert_eq!("7".parse::<TableId>().map(TableId::get), Ok(7));
    }
}
