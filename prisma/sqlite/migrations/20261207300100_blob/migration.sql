-- The table of BLOB_STORE=postgres, for the two schemas to stay alike; with SQLite originals stay
-- in DATA_DIR (src/config/load-config.ts refuses BLOB_STORE=postgres without PostgreSQL).

-- CreateTable
CREATE TABLE "Blob" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "bytes" BLOB NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
