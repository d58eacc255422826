//! A lookup's result in the core's terms, shared by the spine's observation and every
//! strategy's: a resource that does not exist is `Missing`, not an error.

use crate::ports::AwsError;
use crate::reconcile::Lookup;

/// Maps a `NotFound` error to `Missing`; other errors fail the pass.
pub fn lookup<T>(result: Result<T, AwsError>) -> Result<Lookup<T>, AwsError> {
    match result {
        Ok(value) => Ok(Lookup::Found(value)),
        Err(error) if error.is_not_found() => Ok(Lookup::Missing),
        Err(error) => Err(error),
    }
}
