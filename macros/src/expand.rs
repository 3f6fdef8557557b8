//! Code generation for `#[profiled]` and `profile!`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{
    AttrStyle, Attribute, Block, Expr, ExprAsync, ExprCall, Item, ItemFn, ReturnType, Stmt, Type,
};

use crate::args::{Args, BlockArgs};

/// The callsite static, the labels and the span constructor shared by every
/// form of instrumentation.
struct Parts {
    callsite: TokenStream,
    callsite_ident: syn::Ident,
    /// Expression of type `Option<Labels>`.
    labels: TokenStream,
    /// Closure `&SpanMeta -> Span`.
    span: TokenStream,
}

/// `fn_path`: a `#[profiled]` fn (its label is its compiler path: with the
/// impl's type, or `<Type as Trait>`), not a `profile!` block.
fn parts(
    args: &Args,
    default_name: TokenStream,
    span_name: String,
    site: Span,
    fn_path: bool,
) -> Parts {
    let callsite_ident = syn::Ident::new("__AGENTPROF_CALLSITE", site);
    let function = match &args.name {
        Some(name) => quote!(#name),
        None => default_name,
    };
    let agent = match &args.agent {
        Some(agent) => quote!(::core::option::Option::Some(#agent)),
        None => quote!(::core::option::Option::None),
    };
    let line = quote_spanned!(site=> ::core::line!());
    let callsite = if fn_path && args.name.is_none() {
        // The type name of an item nested in the fn is the fn's own path as
        // the compiler knows it, impl type and trait included; the runtime
        // turns it into the label once.
        let path_of = syn::Ident::new("__agentprof_name", site);
        quote! {
            fn #path_of() -> &'static str {
                fn here() {}
                ::core::any::type_name_of_val(&here)
            }
            static #callsite_ident: ::agentprof::__private::Callsite =
                ::agentprof::__private::Callsite::with_path(
                    #path_of, #function, #agent, ::core::file!(), #line,
                );
        }
    } else {
        quote! {
            static #callsite_ident: ::agentprof::__private::Callsite =
                ::agentprof::__private::Callsite::new(#function, #agent, ::core::file!(), #line);
        }
    };
    let labels = match &args.labels {
        Some(labels) if !labels.is_empty() => {
            let pairs = labels.iter().map(|l| {
                let key = l.key.to_string();
                let value = &l.value;
                quote_spanned!(value.span()=> (#key, &(#value) as &dyn ::core::fmt::Display))
            });
            quote!(::core::option::Option::Some(::agentprof::__private::Labels::new(&[#(#pairs),*])))
        }
        _ => quote!(::core::option::Option::None),
    };
    let meta = syn::Ident::new("__agentprof_meta", Span::mixed_site());
    let span = if args.wants_span() {
        let span_name = match &args.name {
            Some(name) => name.value(),
            None => span_name,
        };
        let label_fields = args.labels.iter().flatten().map(|l| {
            let key = &l.key;
            quote!(#key = ::agentprof::__private::tracing::field::Empty)
        });
        quote! {
            |#meta: &::agentprof::__private::SpanMeta| ::agentprof::__private::tracing::info_span!(
                target: ::core::module_path!(),
                #span_name,
                agent = #meta.agent(),
                invocation_id = #meta.invocation_id(),
                outcome = ::agentprof::__private::tracing::field::Empty,
                resource.cpu.micros = ::agentprof::__private::tracing::field::Empty,
                resource.wall.micros = ::agentprof::__private::tracing::field::Empty,
                resource.polls = ::agentprof::__private::tracing::field::Empty,
                resource.memory.bytes = ::agentprof::__private::tracing::field::Empty,
                resource.memory.peak = ::agentprof::__private::tracing::field::Empty,
                resource.memory.allocations = ::agentprof::__private::tracing::field::Empty,
                agentprof.exemplar = ::agentprof::__private::tracing::field::Empty,
                #(#label_fields,)*
            )
        }
    } else {
        quote!(|_: &::agentprof::__private::SpanMeta| ::agentprof::__private::tracing::Span::none())
    };
    Parts {
        callsite,
        callsite_ident,
        labels,
        span,
    }
}

/// Whether a type is written as `Result<..>` (any path ending in `Result`),
/// whose `Err` values count as error outcomes.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    quote!(#ty)
        .into_iter()
        .any(|t| matches!(t, proc_macro2::TokenTree::Ident(i) if i == "impl"))
        || matches!(ty, Type::ImplTrait(_))
}

/// The `Output = T` of an `impl Future<Output = T>` or
/// `Pin<Box<dyn Future<Output = T> + ..>>` return type.
fn future_output(ty: &Type) -> Option<&Type> {
    fn in_bounds<'a>(
        bounds: impl IntoIterator<Item = &'a syn::TypeParamBound>,
    ) -> Option<&'a Type> {
        bounds.into_iter().find_map(|b| match b {
            syn::TypeParamBound::Trait(t) => {
                let last = t.path.segments.last()?;
                if last.ident != "Future" {
                    return None;
                }
                match &last.arguments {
                    syn::PathArguments::AngleBracketed(a) => {
                        a.args.iter().find_map(|arg| match arg {
                            syn::GenericArgument::AssocType(assoc) if assoc.ident == "Output" => {
                                Some(&assoc.ty)
                            }
                            _ => None,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        })
    }
    match ty {
        Type::ImplTrait(t) => in_bounds(&t.bounds),
        Type::TraitObject(t) => in_bounds(&t.bounds),
        Type::Paren(p) => future_output(&p.elem),
        Type::Group(g) => future_output(&g.elem),
        Type::Path(p) => {
            // Pin<Box<dyn Future<..>>>: look through single type arguments.
            let last = p.path.segments.last()?;
            match &last.arguments {
                syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|arg| match arg {
                    syn::GenericArgument::Type(inner) => future_output(inner),
                    _ => None,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

fn failed_fn(args: &Args, output: Option<&Type>) -> TokenStream {
    match output {
        Some(ty) if args.counts_errors() && is_result(ty) => {
            quote!(::agentprof::__private::result_failed)
        }
        _ => quote!(::agentprof::__private::output_never_failed),
    }
}

/// `ProfiledFuture::new(<future>, ..)`, labels evaluated now when recording.
fn wrap_future(future: TokenStream, parts: &Parts, failed: TokenStream) -> TokenStream {
    let Parts {
        callsite_ident,
        labels,
        span,
        ..
    } = parts;
    quote! {
        ::agentprof::__private::ProfiledFuture::new(
            ::core::future::IntoFuture::into_future(#future),
            &#callsite_ident,
            if ::agentprof::is_enabled() { #labels } else { ::core::option::Option::None },
            #span,
            #failed,
        )
    }
}

/// Where the future of a non-`async` fn is: its trailing `async` block,
/// bare or as the argument of `Box::pin(..)` (the shape `async-trait`
/// generates).
fn trailing_future(block: &mut Block) -> Option<&mut Expr> {
    let Some(Stmt::Expr(last, None)) = block.stmts.last_mut() else {
        return None;
    };
    if matches!(last, Expr::Async(_)) {
        return Some(last);
    }
    if let Expr::Call(ExprCall { func, args, .. }) = last {
        let is_box_pin = matches!(&**func, Expr::Path(p)
            if p.path.segments.len() >= 2
                && p.path.segments.iter().rev().nth(1).is_some_and(|s| s.ident == "Box")
                && p.path.segments.last().is_some_and(|s| s.ident == "pin"));
        if is_box_pin
            && args.len() == 1
            && matches!(args.first(), Some(Expr::Async(ExprAsync { .. })))
        {
            return args.first_mut();
        }
    }
    None
}

/// Input:
/// ```ignore
/// #[profiled(agent = "planner")]
/// pub async fn plan(&self, goal: &str) -> Result<Plan> { body }
/// ```
/// Output:
/// ```ignore
/// pub async fn plan(&self, goal: &str) -> Result<Plan> {
///     static __AGENTPROF_CALLSITE: Callsite = Callsite::new(concat!(module_path!(), "::plan"), Some("planner"), ..);
///     ProfiledFuture::new(async move { body }, &__AGENTPROF_CALLSITE, labels, span, result_failed).await
/// }
/// ```
/// A sync fn instead keeps its body in place behind a guard; one returning
/// `Result` runs it in a closure so that `?` and `return` reach the outcome.
pub(crate) fn function(args: &Args, mut item: ItemFn) -> TokenStream {
    let ident = &item.sig.ident;
    let name_text = ident.to_string();
    let default_name = quote!(::core::concat!(::core::module_path!(), "::", #name_text));
    let site = ident.span();
    let parts = parts(args, default_name, name_text, site, true);
    let callsite = &parts.callsite;
    let ret_ty: Option<Type> = match &item.sig.output {
        ReturnType::Type(_, ty) => Some((**ty).clone()),
        ReturnType::Default => None,
    };

    let body: TokenStream = if item.sig.asyncness.is_some() {
        let block = &item.block;
        let body = syn::Ident::new("__agentprof_body", Span::mixed_site());
        // The user's block becomes an `async move` block; lints about that
        // shape are about our code, not theirs.
        let future = quote_spanned!(block.span()=>
            #[allow(clippy::redundant_async_block)]
            let #body = async move #block;
        );
        let wrapped = wrap_future(quote!(#body), &parts, failed_fn(args, ret_ty.as_ref()));
        quote!(#callsite #future #wrapped.await)
    } else if let Some(future) = trailing_future(&mut item.block) {
        let output = ret_ty.as_ref().and_then(future_output);
        let failed = failed_fn(args, output);
        let original = future.clone();
        *future = syn::parse2(wrap_future(quote!(#original), &parts, failed))
            .expect("a call expression always parses");
        let stmts = &item.block.stmts;
        quote!(#callsite #(#stmts)*)
    } else {
        let slot = syn::Ident::new("__agentprof_slot", Span::mixed_site());
        let guard = syn::Ident::new("__agentprof_guard", Span::mixed_site());
        let ret = syn::Ident::new("__agentprof_ret", Span::mixed_site());
        let Parts {
            callsite_ident,
            labels,
            span,
            ..
        } = &parts;
        let reports_errors = args.counts_errors()
            && ret_ty
                .as_ref()
                .is_some_and(|ty| is_result(ty) && !contains_impl_trait(ty));
        // Only a guard that is told about `Err` needs to be mutable.
        let guard_mut = reports_errors.then(|| quote!(mut));
        let enter = quote! {
            #callsite
            let mut #slot = ::agentprof::__private::SyncSlot::new();
            let #guard_mut #guard = #slot.enter(&#callsite_ident, || #labels, #span);
        };
        match &ret_ty {
            Some(ty) if reports_errors => {
                // The body runs in place (no closure), so references borrowed
                // from arguments can be returned and `#[track_caller]`
                // reaches it. Every `return` reports its value; an exit by
                // `?` can only carry an `Err`, which the guard assumes until
                // told otherwise.
                let mut block = (*item.block).clone();
                ReportReturns { guard: &guard }.visit_block_mut(&mut block);
                quote! {
                    #enter
                    #guard.set_failed(true);
                    let #ret: #ty = #block;
                    #guard.set_failed(::agentprof::__private::result_failed(&#ret));
                    #ret
                }
            }
            // The body's statements go straight into ours: wrapped in
            // another block, a one-expression body would trip
            // `unused_braces` on the user's own braces.
            _ => {
                let stmts = &item.block.stmts;
                quote!(#enter #(#stmts)*)
            }
        }
    };

    // Inner attributes (`#![allow(..)]` at the top of the body) stay inside.
    let (inner, outer): (Vec<&Attribute>, Vec<&Attribute>) = item
        .attrs
        .iter()
        .partition(|a| matches!(a.style, AttrStyle::Inner(_)));
    let ItemFn { vis, sig, .. } = &item;
    quote!(#(#outer)* #vis #sig { #(#inner)* #body })
}

/// `profile!(agent = "x", async { .. })` → a `ProfiledFuture` with its own
/// callsite.
pub(crate) fn block(input: BlockArgs) -> TokenStream {
    let site = input.future.span();
    let default_name = quote_spanned!(site=>
        ::core::concat!(::core::module_path!(), "::{async@", ::core::line!(), "}"));
    let parts = parts(
        &input.args,
        default_name,
        "async_block".to_owned(),
        site,
        false,
    );
    let callsite = &parts.callsite;
    let future = &input.future;
    let wrapped = wrap_future(
        quote!(#future),
        &parts,
        quote!(::agentprof::__private::output_never_failed),
    );
    quote!({ #callsite #wrapped })
}

/// Makes every `return` of a fn body report its value to the invocation's
/// guard: `return e` becomes `return __private::returned(e, &mut guard)`.
/// Closures, async blocks, const blocks and nested items have returns of
/// their own and are left alone.
struct ReportReturns<'a> {
    guard: &'a syn::Ident,
}

impl VisitMut for ReportReturns<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) => {}
            Expr::Return(ret) => {
                if let Some(value) = &mut ret.expr {
                    self.visit_expr_mut(value);
                    let guard = self.guard;
                    let original = &**value;
                    **value = syn::parse_quote_spanned!(original.span()=>
                        ::agentprof::__private::returned(#original, &mut #guard)
                    );
                }
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut Item) {}
}
