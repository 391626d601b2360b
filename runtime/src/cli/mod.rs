//! The `vigia` subcommands.

pub mod args;
pub mod bench;
pub mod classify;
pub mod doctor;
pub mod follow;
pub mod inspect;
pub mod run;
pub mod track;
