//! What a reader runs: every example on a tiny configuration, the digits example as it ships,
//! and the book's exercise solutions with its listings and figures, in one binary.

// Each example brings its own `mod common;`, as it does when built alone.
#![allow(clippy::duplicate_mod)]

mod book_solutions;
mod digits;
mod examples;
