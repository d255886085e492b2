//! Test extension module (issue 7).
