//! `#[derive(SyncableModel)]`: generates the `sync_model::SyncableModel` impl of a domain type.
#![doc = include_str!("../README.md")]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Path, parse_macro_input, spanned::Spanned};

#[proc_macro_derive(SyncableModel, attributes(sync))]
pub fn derive_syncable_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

#[derive(Default)]
struct ContainerAttrs {
    domain: Option<LitStr>,
    workflow: Option<LitStr>,
    critical_fields: Vec<Ident>,
    priority_field: Option<LitStr>,
    validate: Option<Path>,
}

fn is_valid_domain(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

fn parse_container(input: &DeriveInput) -> syn::Result<ContainerAttrs> {
    let mut attrs = ContainerAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("sync")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("domain") {
                let lit: LitStr = meta.value()?.parse()?;
                if !is_valid_domain(&lit.value()) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "domain must be 1 to 64 characters of a-z, 0-9 and _, starting with a letter",
                    ));
                }
                attrs.domain = Some(lit);
            } else if meta.path.is_ident("workflow") {
                attrs.workflow = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("priority_field") {
                attrs.priority_field = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("validate") {
                let lit: LitStr = meta.value()?.parse()?;
                attrs.validate = Some(lit.parse()?);
            } else if meta.path.is_ident("critical_fields") {
                meta.parse_nested_meta(|field| {
                    let ident = field.path.get_ident().cloned().ok_or_else(|| {
                        field.error("critical_fields takes plain field names: critical_fields(a, b)")
                    })?;
                    attrs.critical_fields.push(ident);
                    Ok(())
                })?;
            } else {
                let name = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
                return Err(meta.error(format!(
                    "unknown sync attribute `{name}`; expected domain, workflow, critical_fields, priority_field or validate"
                )));
            }
            Ok(())
        })?;
    }
    Ok(attrs)
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let attrs = parse_container(input)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(Span::call_site(), "SyncableModel can only be derived for a struct"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(data.fields.span(), "SyncableModel needs a struct with named fields"));
    };

    let mut meta_field: Option<(&Ident, &syn::Type)> = None;
    for field in &fields.named {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("sync")) {
            let mut is_meta = false;
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("meta") {
                    is_meta = true;
                    Ok(())
                } else {
                    Err(meta.error("unknown sync field attribute; the only one is #[sync(meta)]"))
                }
            })?;
            if is_meta {
                if meta_field.is_some() {
                    return Err(syn::Error::new_spanned(attr, "only one field may be #[sync(meta)]"));
                }
                meta_field = field.ident.as_ref().map(|ident| (ident, &field.ty));
            }
        }
    }
    let Some((meta_field, meta_ty)) = meta_field else {
        return Err(syn::Error::new(
            Span::call_site(),
            "SyncableModel needs one field marked #[sync(meta)] of type sync_model::SyncMeta",
        ));
    };
    let Some(domain) = attrs.domain else {
        return Err(syn::Error::new(Span::call_site(), "missing #[sync(domain = \"...\")]"));
    };

    let field_names: Vec<String> =
        fields.named.iter().filter_map(|f| f.ident.as_ref().map(ToString::to_string)).collect();
    for critical in &attrs.critical_fields {
        if !field_names.contains(&critical.to_string()) {
            return Err(syn::Error::new(
                critical.span(),
                format!("critical field `{critical}` is not a field of this struct"),
            ));
        }
    }
    if let Some(priority) = &attrs.priority_field
        && !field_names.contains(&priority.value())
    {
        return Err(syn::Error::new(
            priority.span(),
            format!("priority field `{}` is not a field of this struct", priority.value()),
        ));
    }

    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let workflow = match &attrs.workflow {
        Some(w) => quote!(::core::option::Option::Some(#w)),
        None => quote!(::core::option::Option::None),
    };
    let critical: Vec<String> = attrs.critical_fields.iter().map(ToString::to_string).collect();
    let priority = match &attrs.priority_field {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let validate = match &attrs.validate {
        Some(path) => quote!(#path(self)),
        None => quote!(::core::result::Result::Ok(())),
    };

    // Spanned at the field's type, so a meta field of the wrong type is reported there.
    let meta_ref = quote_spanned!(meta_ty.span()=> &self.#meta_field);
    let meta_mut = quote_spanned!(meta_ty.span()=> &mut self.#meta_field);

    Ok(quote! {
        impl #impl_generics ::sync_model::SyncableModel for #name #ty_generics #where_clause {
            const DOMAIN: &'static str = #domain;
            const WORKFLOW: ::core::option::Option<&'static str> = #workflow;
            const CRITICAL_FIELDS: &'static [&'static str] = &[#(#critical),*];
            const PRIORITY_FIELD: ::core::option::Option<&'static str> = #priority;

            fn sync_meta(&self) -> &::sync_model::SyncMeta {
                #meta_ref
            }

            fn sync_meta_mut(&mut self) -> &mut ::sync_model::SyncMeta {
                #meta_mut
            }

            fn validate(&self) -> ::core::result::Result<(), ::sync_model::ValidationErrors> {
                #validate
            }
        }
    })
}
