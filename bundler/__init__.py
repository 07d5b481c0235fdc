"""Airlock's connected side: build a signed, chunked, content-addressed bundle for an offline site.

`create_bundle(spec, out)` (bundler.create) is the library entry point; `airlock bundle create SPEC --out DIR` its
CLI face. The format is described in bundler/FORMAT.md; the offline side lives in installer/.
"""
