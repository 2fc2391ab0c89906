//! A change source whose events pass through a [`ChangeMapper`]: source changes in, target
//! changes out, ahead of the sink.

use std::time::Duration;

use dts_core::{ChangeEvent, ChangeMapper, ChangeSource, Result};

/// `source`'s events, mapped by `mapper`.
///
/// Build a new one (with a mapper rebuilt from the schema recorded at the start position)
/// for each connection the engine opens: a mapper is never rewound.
#[derive(Debug)]
pub struct MappedSource<S, M> {
    source: S,
    mapper: M,
}

impl<S, M> MappedSource<S, M> {
    /// `source`, mapped by `mapper`.
    pub fn new(source: S, mapper: M) -> Self {
        Self { source, mapper }
    }
}

#[dts_core::async_trait]
impl<S: ChangeSource, M: ChangeMapper> ChangeSource for MappedSource<S, M> {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let events = self.source.next_events(max, timeout).await?;
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let ends = event.change.ends_transaction();
            match self.mapper.map(event)? {
                Some(mapped) => out.push(mapped),
                None if ends => {
                    return Err(dts_core::Error::internal(
                        "a change mapper dropped the end of a transaction",
                    ))
                }
                None => {}
            }
        }
        Ok(out)
    }

    fn acknowledge(&mut self, position: &dts_core::Position) {
        self.source.acknowledge(position);
    }
}
