-- Keyword search over caption and altText with PostgreSQL's text search (not expressible in
-- schema.prisma). Queries must repeat this expression exactly to use the index
-- (src/repositories/image-filter-sql.ts). 'english' = stemming and English stop words.
CREATE INDEX "Image_fulltext_idx" ON "Image" USING GIN (
    to_tsvector('english'::regconfig, coalesce("caption", '') || ' ' || coalesce("altText", ''))
);

-- The metadata filter is PostgreSQL's @> on the stored JSON text.
CREATE INDEX "Image_metadata_idx" ON "Image" USING GIN ((("metadata")::jsonb) jsonb_path_ops);
