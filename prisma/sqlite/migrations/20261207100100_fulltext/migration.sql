-- Keyword search over caption and altText with SQLite's FTS5 (not expressible in schema.prisma).
-- An external-content table: it indexes the Image columns, stores no copy of them, and is kept
-- in step by the triggers below. porter = English stemming ("circles" finds "circle").
CREATE VIRTUAL TABLE "image_fts" USING fts5(
    "caption", "altText",
    content = 'Image', content_rowid = 'label',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO "image_fts"("image_fts") VALUES ('rebuild');

CREATE TRIGGER "image_fts_after_insert" AFTER INSERT ON "Image" BEGIN
    INSERT INTO "image_fts"(rowid, "caption", "altText") VALUES (new."label", new."caption", new."altText");
END;

CREATE TRIGGER "image_fts_after_delete" AFTER DELETE ON "Image" BEGIN
    INSERT INTO "image_fts"("image_fts", rowid, "caption", "altText") VALUES ('delete', old."label", old."caption", old."altText");
END;

CREATE TRIGGER "image_fts_after_update" AFTER UPDATE OF "caption", "altText" ON "Image" BEGIN
    INSERT INTO "image_fts"("image_fts", rowid, "caption", "altText") VALUES ('delete', old."label", old."caption", old."altText");
    INSERT INTO "image_fts"(rowid, "caption", "altText") VALUES (new."label", new."caption", new."altText");
END;
