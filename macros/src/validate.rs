//! Whole-item checks: which functions `#[profiled]` can wrap.

use syn::{ItemFn, Signature};

/// Rejects signatures the wrapper cannot serve, at the offending token.
pub(crate) fn signature(sig: &Signature) -> syn::Result<()> {
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span,
            "#[profiled] cannot be used on a `const fn`: it can run at compile time, where there is nothing to measure",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new_spanned(
            abi,
            "#[profiled] cannot be used on an `extern` fn: foreign callers cannot unwind through the \
             profiler's guard, and a panic there would abort; profile a Rust fn that it calls instead",
        ));
    }
    Ok(())
}

/// Parses the annotated item, explaining what `#[profiled]` accepts.
pub(crate) fn item(tokens: proc_macro2::TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<ItemFn>(tokens.clone()) {
        Ok(item) => Ok(item),
        Err(fn_error) => match syn::parse2::<syn::TraitItemFn>(tokens.clone()) {
            Ok(declaration) if declaration.default.is_none() => Err(syn::Error::new_spanned(
                &declaration.sig.ident,
                "#[profiled] needs a function body: put it on the method in each impl, not on the trait's declaration",
            )),
            _ => match syn::parse2::<syn::Item>(tokens) {
                Ok(other) => Err(syn::Error::new(
                    item_keyword_span(&other),
                    "#[profiled] can only be used on functions and methods",
                )),
                Err(_) => Err(fn_error),
            },
        },
    }
}

fn item_keyword_span(item: &syn::Item) -> proc_macro2::Span {
    use syn::spanned::Spanned;
    use syn::Item::*;
    match item {
        Struct(i) => i.struct_token.span,
        Enum(i) => i.enum_token.span,
        Impl(i) => i.impl_token.span,
        Trait(i) => i.trait_token.span,
        Mod(i) => i.mod_token.span,
        Const(i) => i.const_token.span,
        Static(i) => i.static_token.span,
        Type(i) => i.type_token.span,
        Use(i) => i.use_token.span,
        Union(i) => i.union_token.span,
        other => other.span(),
    }
}
