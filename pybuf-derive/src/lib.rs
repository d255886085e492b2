//! `#[derive(Element)]` for pybuf (helper branch `derive` implements it).

use proc_macro::TokenStream;

/// Derives `pybuf::Element` for a `#[repr(C)]` struct.
#[proc_macro_derive(Element, attributes(pybuf))]
pub fn derive_element(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
