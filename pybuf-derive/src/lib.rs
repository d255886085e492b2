//! `#[derive(Element)]` for [pybuf](https://docs.rs/pybuf): read numpy structured arrays and
//! ctypes `Structure` arrays as Rust records.
//!
//! Use it through the `pybuf` crate (`#[derive(pybuf::Element)]`, feature `derive`, on by
//! default); the generated code refers to `::pybuf`. See [`macro@Element`] for the rules.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, Data, DeriveInput, Error, Fields, GenericParam, LitStr, Member, Path, Result,
};

/// Derives `pybuf::Element` for a `#[repr(C)]` or `#[repr(C, packed)]` struct, so that buffers
/// whose items are PEP 3118 structs (`T{...}`: numpy structured dtypes, ctypes `Structure`s)
/// can be read as values of the struct.
///
/// The generated `layout()` is a struct item with one field per Rust field, in declaration
/// order: its name (the Rust field name), its byte offset (`core::mem::offset_of!`) and the
/// field type's own `Element::layout()`; the item's size and alignment are the struct's.
/// A buffer matches the struct when every field has the same offset, the same kind and byte
/// order, and (where both sides carry names) the same name; padding bytes belong to no field
/// and are never read as values. `ALWAYS_VALID` holds when it holds for every field (padding
/// may hold any bytes), and `is_valid` checks each field's bytes with the field type's
/// `is_valid` (so a `bool` field holding the byte 2 makes the record invalid). `HAS_PADDING`
/// holds when the struct is larger than the sum of its fields or any field type has padding
/// (through arrays and nested records).
///
/// ```
/// use pybuf::format::parse;
/// use pybuf::Element;
///
/// // numpy: np.dtype([('a', 'i4'), ('b', 'f8')], align=True) exports 'T{i:a:xxxxd:b:}'
/// #[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
/// #[repr(C)]
/// struct Rec {
///     a: i32,
///     b: f64,
/// }
///
/// assert_eq!(Rec::layout().size, 16);
/// assert_eq!(Rec::layout().to_format(), "T{<i:a:4x<d:b:}");
/// assert!(parse("T{i:a:xxxxd:b:}").unwrap().matches(&Rec::layout()).is_ok());
/// ```
///
/// # Attributes
///
/// - `#[pybuf(name = "...")]` on a field: the name the buffer's format uses for it, when it
///   differs from the Rust name (or is not a Rust identifier). On a tuple struct field it gives
///   that field a name.
/// - `#[pybuf(ignore_names)]` on the struct: the layout carries no names, so formats without
///   names (`'T{<i<d}'`, `'id'`) or with other names still match; offsets and kinds are
///   still compared.
/// - `#[pybuf(no_padding)]` on the struct: refuse at compile time a struct with padding bytes
///   anywhere: between or after its fields, or inside a field (a nested record with padding,
///   an array of such records, a field type whose `Element` impl keeps the default
///   `HAS_PADDING = true`). Such a record allows mutable views (`write()`, `with_mut`).
/// - `#[pybuf(crate = "path")]` on the struct: the path of the `pybuf` crate (default
///   `::pybuf`), for re-exports.
///
/// Raw identifiers lose their prefix: `r#type` is the field `type`.
///
/// ```
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C, packed)]
/// struct Packed {
///     #[pybuf(name = "class")]
///     class_: u8,
///     value: pybuf::be::F64, // numpy '>f8', ctypes BigEndianStructure c_double
/// }
///
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(ignore_names)]
/// struct Point(f64, f64); // matches 'T{d:x:d:y:}', 'T{dd}', '2d' and 'dd'
///
/// use pybuf::Element;
/// assert_eq!(Packed::layout().to_format(), "T{B:class:>d:value:}");
/// assert_eq!(Point::layout().to_format(), "T{<d<d}");
/// ```
///
/// # What is accepted
///
/// - Structs with named fields and tuple structs (whose fields are unnamed unless given
///   `#[pybuf(name = "...")]`), with `#[repr(C)]`, optionally `packed`, `packed(N)` or
///   `align(N)`.
/// - Every field type must be an `Element`: scalars, `bool`, `[T; N]` (numpy sub-array
///   fields `('v', 'f4', (3,))`, ctypes arrays `c_char * 5` as `[u8; 5]`), byte-order types
///   (`pybuf::be::F64`), `zerocopy::Unalign<T>`, and other derived records (nested `T{}`).
/// - Generic structs: type and const parameters are supported; the impl requires every field
///   type to be an `Element` (and the parameters to be `'static`). The layout of a generic
///   struct is built on each call; that of a non-generic struct is built once and cached.
/// - Padding between fields and at the end (C alignment, `align(N)`, `packed(N)`): a format
///   describes it with `x` (numpy writes `xxxx` between fields of an `align=True` dtype,
///   ctypes `4x`), and a native (`@`) format implies it by the C alignment rules, so padding
///   can always be matched. It is not part of any field, so it is never read as a value and
///   never validated. Rust leaves the padding of its values uninitialized, so pybuf never
///   copies it into Python's memory: `set_item` and `copy_from_slice` store the fields only
///   (the buffer's padding bytes keep what they held), and mutable views (`write()`,
///   `with_mut`) of a record with padding are refused with `Error::PaddedElement` (use
///   `no_padding` to make sure a record has none).
///
/// # What is refused at compile time
///
/// Everything that can never match a PEP 3118 format, or cannot be read soundly:
/// - a struct without `#[repr(C)]` (Rust's default layout reorders fields; `repr(transparent)`
///   and `repr(packed)` alone are refused too);
/// - enums and unions (a format has no tag or overlapping fields);
/// - unit structs and structs without fields (an item cannot be zero bytes);
/// - lifetime parameters (an `Element` holds no references);
/// - a field whose type is not an `Element` (the error points at the field's type);
/// - an empty name, or a name containing `:` (it ends a name in a format), and two fields with
///   the same name (numpy refuses such dtypes);
/// - padding anywhere in the struct, also inside its fields, with `#[pybuf(no_padding)]`;
/// - unknown `pybuf` attributes.
///
/// The compile-fail cases are checked as doctests on a private module of this crate.
#[proc_macro_derive(Element, attributes(pybuf))]
pub fn derive_element(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Struct-level `#[pybuf(...)]` options.
struct StructOptions {
    ignore_names: bool,
    no_padding: bool,
    krate: Path,
}

fn struct_options(input: &DeriveInput) -> Result<StructOptions> {
    let mut options = StructOptions {
        ignore_names: false,
        no_padding: false,
        krate: syn::parse_quote!(::pybuf),
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("pybuf")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("ignore_names") {
                options.ignore_names = true;
                Ok(())
            } else if meta.path.is_ident("no_padding") {
                options.no_padding = true;
                Ok(())
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                options.krate = lit.parse()?;
                Ok(())
            } else if meta.path.is_ident("name") {
                Err(meta.error("`name` goes on a field: `#[pybuf(name = \"...\")]`"))
            } else {
                Err(meta.error(
                    "unknown pybuf attribute; expected `ignore_names`, `no_padding` or \
                     `crate = \"...\"`",
                ))
            }
        })?;
    }
    Ok(options)
}

/// Checks `#[repr(...)]`: `C` is required; `packed`, `packed(N)` and `align(N)` may join it.
fn check_repr(input: &DeriveInput) -> Result<()> {
    let mut has_c = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("C") {
                has_c = true;
                Ok(())
            } else if meta.path.is_ident("packed") || meta.path.is_ident("align") {
                if meta.input.peek(syn::token::Paren) {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    content.parse::<syn::LitInt>()?;
                }
                Ok(())
            } else if meta.path.is_ident("transparent") {
                Err(meta.error(
                    "derive(Element) needs `#[repr(C)]`; `repr(transparent)` is not supported \
                     (use `#[repr(C)]` with `#[pybuf(ignore_names)]` for a newtype)",
                ))
            } else {
                Err(meta.error(
                    "derive(Element) supports `#[repr(C)]` with optional `packed`, \
                     `packed(N)` or `align(N)` only",
                ))
            }
        })?;
    }
    if has_c {
        Ok(())
    } else {
        Err(Error::new(
            input.ident.span(),
            "derive(Element) needs `#[repr(C)]` (or `#[repr(C, packed)]`): without it Rust may \
             reorder fields, and the layout would not match any buffer format",
        ))
    }
}

/// Reads a field's `#[pybuf(name = "...")]`.
fn field_name_override(field: &syn::Field) -> Result<Option<LitStr>> {
    let mut name = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("pybuf")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                name = Some(meta.value()?.parse::<LitStr>()?);
                Ok(())
            } else {
                Err(meta.error("unknown pybuf field attribute; expected `name = \"...\"`"))
            }
        })?;
    }
    Ok(name)
}

fn check_name(name: &str, span: Span) -> Result<()> {
    if name.is_empty() {
        Err(Error::new(
            span,
            "a field name in a buffer format cannot be empty",
        ))
    } else if name.contains(':') {
        Err(Error::new(
            span,
            "a field name in a buffer format cannot contain ':' (it ends the name), so this \
             field could never match",
        ))
    } else {
        Ok(())
    }
}

/// One field as the generated code needs it.
struct FieldSpec {
    member: Member,
    ty: syn::Type,
    name: Option<String>,
}

fn expand(input: &DeriveInput) -> Result<TokenStream2> {
    let data =
        match &input.data {
            Data::Struct(data) => data,
            Data::Enum(e) => return Err(Error::new(
                e.enum_token.span(),
                "derive(Element) supports structs only: a buffer format has no enums (read the \
                 tag as an integer field instead)",
            )),
            Data::Union(u) => {
                return Err(Error::new(
                    u.union_token.span(),
                    "derive(Element) supports structs only: a buffer format has no unions",
                ))
            }
        };
    check_repr(input)?;
    let options = struct_options(input)?;
    let krate = &options.krate;

    for param in &input.generics.params {
        if let GenericParam::Lifetime(l) = param {
            return Err(Error::new(
                l.span(),
                "derive(Element) does not support lifetime parameters: an Element is 'static \
                 and holds no references",
            ));
        }
    }

    let mut fields = Vec::new();
    match &data.fields {
        Fields::Unit => {}
        Fields::Named(named) => {
            for field in &named.named {
                let ident = field.ident.as_ref().expect("named field");
                let override_name = field_name_override(field)?;
                let (name, span) = match &override_name {
                    Some(lit) => (lit.value(), lit.span()),
                    None => {
                        let s = ident.to_string();
                        let s = s.strip_prefix("r#").map(str::to_string).unwrap_or(s);
                        (s, ident.span())
                    }
                };
                check_name(&name, span)?;
                fields.push((
                    FieldSpec {
                        member: Member::Named(ident.clone()),
                        ty: field.ty.clone(),
                        name: Some(name),
                    },
                    span,
                ));
            }
        }
        Fields::Unnamed(unnamed) => {
            for (i, field) in unnamed.unnamed.iter().enumerate() {
                let override_name = field_name_override(field)?;
                let name = match &override_name {
                    Some(lit) => {
                        check_name(&lit.value(), lit.span())?;
                        Some(lit.value())
                    }
                    None => None,
                };
                fields.push((
                    FieldSpec {
                        member: Member::Unnamed(syn::Index {
                            index: i as u32,
                            span: field.ty.span(),
                        }),
                        ty: field.ty.clone(),
                        name,
                    },
                    field.span(),
                ));
            }
        }
    }
    if fields.is_empty() {
        return Err(Error::new(
            input.ident.span(),
            "derive(Element) needs at least one field: a buffer item cannot be zero bytes",
        ));
    }
    if !options.ignore_names {
        for (i, (field, span)) in fields.iter().enumerate() {
            if let Some(name) = &field.name {
                if fields[..i]
                    .iter()
                    .any(|(f, _)| f.name.as_ref() == Some(name))
                {
                    return Err(Error::new(
                        *span,
                        format!(
                            "two fields are named '{name}'; a buffer format (and numpy) needs \
                             distinct names (rename one with #[pybuf(name = \"...\")] or use \
                             #[pybuf(ignore_names)])"
                        ),
                    ));
                }
            }
        }
    }
    let fields: Vec<FieldSpec> = fields.into_iter().map(|(f, _)| f).collect();

    let ident = &input.ident;
    let generic = input
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, GenericParam::Lifetime(_)));

    // where-clause: every field type is an Element (errors point at the field's type), and
    // every type parameter is 'static (an Element is).
    let mut generics = input.generics.clone();
    if generic {
        let where_clause = generics.make_where_clause();
        for field in &fields {
            let ty = &field.ty;
            where_clause
                .predicates
                .push(syn::parse_quote_spanned!(ty.span()=> #ty: #krate::Element));
        }
        for param in &input.generics.params {
            if let GenericParam::Type(t) = param {
                let t = &t.ident;
                where_clause.predicates.push(syn::parse_quote!(#t: 'static));
            }
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let field_exprs = fields.iter().map(|f| {
        let ty = &f.ty;
        let member = &f.member;
        let name = match (&f.name, options.ignore_names) {
            (Some(name), false) => quote!(::core::option::Option::Some(
                ::std::string::String::from(#name)
            )),
            _ => quote!(::core::option::Option::None),
        };
        let layout = quote_spanned!(ty.span()=> <#ty as #krate::Element>::layout());
        quote! {
            #krate::format::Field {
                name: #name,
                offset: ::core::mem::offset_of!(Self, #member),
                layout: #layout,
            }
        }
    });
    let build = quote! {
        #krate::format::ItemLayout {
            size: ::core::mem::size_of::<Self>(),
            align: ::core::mem::align_of::<Self>(),
            kind: #krate::format::ItemKind::Struct(::std::vec![#(#field_exprs),*]),
        }
    };
    let layout_body = if generic {
        // A `static` in a generic function is shared by all instantiations: build each time.
        build
    } else {
        quote! {
            static LAYOUT: ::std::sync::OnceLock<#krate::format::ItemLayout> =
                ::std::sync::OnceLock::new();
            ::core::clone::Clone::clone(LAYOUT.get_or_init(|| #build))
        }
    };

    let always_valid = fields.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> <#ty as #krate::Element>::ALWAYS_VALID)
    });
    let field_checks = fields.iter().map(|f| {
        let ty = &f.ty;
        let member = &f.member;
        // `bytes` has the struct's size (checked first), so the field's range is in bounds
        quote_spanned! {ty.span()=>
            {
                let start = ::core::mem::offset_of!(Self, #member);
                <#ty as #krate::Element>::is_valid(
                    &bytes[start..start + ::core::mem::size_of::<#ty>()],
                )
            }
        }
    });

    // Padding: gaps between or after the fields (the struct is larger than the sum of its
    // fields), or padding inside a field's type (arrays and nested records carry theirs).
    let field_sizes = fields.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> ::core::mem::size_of::<#ty>())
    });
    let field_padding = fields.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> <#ty as #krate::Element>::HAS_PADDING)
    });
    let has_padding = quote! {
        ::core::mem::size_of::<Self>() != 0 #(+ #field_sizes)* #(|| #field_padding)*
    };

    let padding_check = if options.no_padding {
        let message = format!(
            "#[pybuf(no_padding)]: `{ident}` has padding bytes (between or after its fields, \
             or inside a field's type)"
        );
        let assertion = quote! {
            ::core::assert!(
                !<#ident #ty_generics as #krate::Element>::HAS_PADDING,
                #message
            )
        };
        if generic {
            // evaluated when the impl is instantiated
            quote!(const { #assertion };)
        } else {
            quote!(const _: () = #assertion;)
        }
    } else {
        quote!()
    };
    let (outer_check, inner_check) = if generic {
        (quote!(), padding_check)
    } else {
        (padding_check, quote!())
    };

    Ok(quote! {
        #outer_check

        // SAFETY: the struct is `#[repr(C)]` (checked by the derive), so its fields lie at the
        // offsets `offset_of!` reports, each holding its field type's layout; size and
        // alignment are the struct's own. Its bytes outside the fields are padding, which Rust
        // leaves uninitialized and which the layout gives to no scalar; so the value bytes of
        // the layout are the fields' value bytes, initialized by each field's own contract.
        // `HAS_PADDING` is false only when the fields fill the struct (their sizes add up to
        // its size; `repr(C)` fields do not overlap) and no field type has padding. Every
        // field type is an `Element`, so the struct is `Copy + Send + Sync + 'static` only if
        // the user derived those (the supertraits are checked by the compiler). Initialized
        // bytes are a valid value exactly when each field's bytes are valid for its type,
        // whatever the padding bytes hold: so `ALWAYS_VALID` is the fields' conjunction.
        #[automatically_derived]
        unsafe impl #impl_generics #krate::Element for #ident #ty_generics #where_clause {
            const ALWAYS_VALID: bool = true #(&& #always_valid)*;
            const HAS_PADDING: bool = #has_padding;

            fn layout() -> #krate::format::ItemLayout {
                #inner_check
                #layout_body
            }

            fn is_valid(bytes: &[u8]) -> bool {
                <Self as #krate::Element>::ALWAYS_VALID
                    || (bytes.len() == ::core::mem::size_of::<Self>() #(&& #field_checks)*)
            }
        }
    })
}

/// Compile-fail checks: each example below must be refused by the compiler (run as doctests
/// of this crate, through its `pybuf` dev-dependency). Every example derives `Clone` and
/// `Copy` and uses only `Element` field types unless the point is their absence, so the
/// refusal is the one named.
///
/// Without `#[repr(C)]`:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// struct S { a: f64 }
/// ```
/// `repr(packed)` without `C`:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(packed)]
/// struct S { a: u8, b: f64 }
/// ```
/// `repr(transparent)`:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(transparent)]
/// struct S(f64);
/// ```
/// An enum:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// enum E { A, B }
/// ```
/// A union:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// union U { a: f64, b: u64 }
/// ```
/// A unit struct, and a struct without fields:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S;
/// ```
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S {}
/// ```
/// A lifetime parameter:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S<'a> { a: &'a f64 }
/// ```
/// A field type that is not an `Element` (`char` is `Copy` but has no buffer format):
/// ```compile_fail,E0277
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S { a: f64, c: char }
/// ```
/// A generic record instantiated with a non-`Element` type:
/// ```compile_fail,E0277
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S<T: Copy> { a: T }
/// let _ = <S<char> as pybuf::Element>::layout();
/// ```
/// A struct that is not `Copy`:
/// ```compile_fail,E0277
/// #[derive(Clone, pybuf::Element)]
/// #[repr(C)]
/// struct S { a: f64 }
/// ```
/// Field names that no format can carry (empty, containing `:`), and duplicate names:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S { #[pybuf(name = "")] a: f64 }
/// ```
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S { #[pybuf(name = "a:b")] a: f64 }
/// ```
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S { a: f64, #[pybuf(name = "a")] b: f64 }
/// ```
/// Padding with `#[pybuf(no_padding)]` (interior, then trailing):
/// ```compile_fail,E0080
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct S { a: u8, b: f64 }
/// ```
/// ```compile_fail,E0080
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct S { a: f64, b: u8 }
/// ```
/// Padding inside a field with `#[pybuf(no_padding)]`: a nested record with padding, an array
/// of such records in a packed struct, a generic record instantiated with one, and a field
/// type whose hand-written `Element` impl keeps the default `HAS_PADDING = true`:
/// ```compile_fail,E0080
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct Inner { a: u8, b: u32 }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct Outer { x: Inner }
/// ```
/// ```compile_fail,E0080
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct Inner { a: u8, b: u32 }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C, packed)]
/// #[pybuf(no_padding)]
/// struct Outer { t: u8, x: [Inner; 2] }
/// ```
/// ```compile_fail,E0080
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct Inner { a: u8, b: u32 }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct G<T: Copy> { x: T }
/// let _ = <G<Inner> as pybuf::Element>::layout();
/// ```
/// ```compile_fail,E0080
/// #[derive(Clone, Copy)]
/// #[repr(transparent)]
/// struct Handwritten(u32);
/// // SAFETY: one native u32
/// unsafe impl pybuf::Element for Handwritten {
///     fn layout() -> pybuf::format::ItemLayout {
///         <u32 as pybuf::Element>::layout()
///     }
/// }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct Outer { x: Handwritten }
/// ```
/// Unknown attributes, and `name` on the struct:
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(ignore_name)]
/// struct S { a: f64 }
/// ```
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct S { #[pybuf(rename = "b")] a: f64 }
/// ```
/// ```compile_fail
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(name = "s")]
/// struct S { a: f64 }
/// ```
///
/// The same shapes that are accepted (so the checks above fail for their stated reason):
/// ```
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// struct A { a: f64, c: u32 }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C, packed)]
/// struct B { a: u8, b: f64 }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C, packed(2))]
/// #[pybuf(no_padding)]
/// struct C { a: u8, b: u8, c: f64 }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C, align(16))]
/// struct D(#[pybuf(name = "x")] f64, #[pybuf(name = "a")] f64);
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(ignore_names)]
/// struct E { a: f64, #[pybuf(name = "a")] b: f64 }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct F<T: Copy, const N: usize> { a: [T; N] }
/// let _ = <F<f32, 3> as pybuf::Element>::layout();
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct Outer { x: C, y: [u16; 3], z: pybuf::be::F64, w: F<u8, 2> }
/// #[derive(Clone, Copy)]
/// #[repr(transparent)]
/// struct Handwritten(u32);
/// // SAFETY: one native u32, no padding
/// unsafe impl pybuf::Element for Handwritten {
///     const HAS_PADDING: bool = false;
///     fn layout() -> pybuf::format::ItemLayout {
///         <u32 as pybuf::Element>::layout()
///     }
/// }
/// #[derive(Clone, Copy, pybuf::Element)]
/// #[repr(C)]
/// #[pybuf(no_padding)]
/// struct H { x: Handwritten, y: [Handwritten; 2] }
/// use pybuf::Element;
/// const { assert!(A::HAS_PADDING && !B::HAS_PADDING && !C::HAS_PADDING && !D::HAS_PADDING) };
/// const { assert!(!Outer::HAS_PADDING && !H::HAS_PADDING) };
/// ```
#[allow(dead_code)]
mod compile_fail_checks {}
