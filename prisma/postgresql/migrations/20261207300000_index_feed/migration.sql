-- The index change feed (issue 45, docs/scaling.md): every change to an embedding appends one row,
-- in the same transaction, by a trigger, so no code path can forget it. API replicas apply the
-- rows in position order to their own HNSW index.

-- CreateTable
CREATE TABLE "IndexFeed" (
    "position" BIGSERIAL NOT NULL,
    "modelId" TEXT NOT NULL,
    "imageLabel" INTEGER NOT NULL,
    "op" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "IndexFeed_pkey" PRIMARY KEY ("position")
);

-- CreateIndex
CREATE INDEX "IndexFeed_modelId_position_idx" ON "IndexFeed"("modelId", "position");

-- A sequence hands out positions in insert order, not commit order: a replica that read position 6
-- before 5 committed would skip 5 for good. The transaction-scoped advisory lock serialises feed
-- writers from their first embedding change to their commit, so positions become visible in
-- order. Embedding writes are short transactions after the inference, so the wait is small.
CREATE FUNCTION "blip_index_feed_record"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(4504502);
  IF TG_OP = 'DELETE' THEN
    INSERT INTO "IndexFeed" ("modelId", "imageLabel", "op") VALUES (OLD."modelId", OLD."imageLabel", 'remove');
  ELSE
    INSERT INTO "IndexFeed" ("modelId", "imageLabel", "op") VALUES (NEW."modelId", NEW."imageLabel", 'add');
  END IF;
  -- Delivered at commit; replicas LISTEN on it and also poll (a lost connection misses notices).
  PERFORM pg_notify('blip_index_feed', current_schema());
  RETURN NULL;
END
$$;

CREATE TRIGGER "ImageEmbedding_index_feed" AFTER INSERT OR UPDATE OR DELETE ON "ImageEmbedding"
  FOR EACH ROW EXECUTE FUNCTION "blip_index_feed_record"();
