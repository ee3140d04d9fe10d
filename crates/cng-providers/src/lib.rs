pub use cng_core;
