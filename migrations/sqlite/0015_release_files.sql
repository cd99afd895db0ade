-- Releases (issue 21): the files a published version carries besides its manifest and
-- component — a layer's `[schemas]` files — as JSON {relative path: sha256}. The bytes
-- are stored content-addressed in `plugin_artifacts` like components. NULL (or `{}`):
-- none. Part of the version's identity: one `name@version` names one component and one
-- set of files for ever.
ALTER TABLE plugin_releases_versions ADD COLUMN files TEXT;
