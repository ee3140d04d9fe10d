//! Workers AI's own wire formats, read tolerantly.
//!
//! These types are private to translation: they read only what cng needs, never deny
//! unknown fields, and fold the spellings the live service uses (`reasoning` and
//! `reasoning_content`; `response` beside `choices`) in one place.

pub mod envelope;
pub(crate) mod text;
