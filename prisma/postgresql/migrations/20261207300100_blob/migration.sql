-- Originals kept in the database (BLOB_STORE=postgres, src/repositories/postgres-blob-store.ts):
-- for small deployments that run several processes without an object store.

-- CreateTable
CREATE TABLE "Blob" (
    "key" TEXT NOT NULL,
    "bytes" BYTEA NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Blob_pkey" PRIMARY KEY ("key")
);
