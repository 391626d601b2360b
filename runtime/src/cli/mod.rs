//! The `vigia` subcommands.

pub mod args;
pub mod classify;
pub mod follow;
pub mod inspect;
pub mod run;
pub mod track;
