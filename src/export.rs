//! Export of Rust memory to Python as a buffer (helper branch `export` implements it).
