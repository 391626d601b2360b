//! Frame sources. Images, folders and globs live in [`images`].

pub mod images;
