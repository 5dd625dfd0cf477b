-- The index change feed (issue 45). The table only, for the two schemas to stay alike: with SQLite
-- one process serves everything (ROLE=all, src/config/load-config.ts) and repairs its index at
-- start, so there is no replica to follow a feed and no trigger fills it. The PostgreSQL
-- migration of the same name adds the trigger.

-- CreateTable
CREATE TABLE "IndexFeed" (
    "position" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "modelId" TEXT NOT NULL,
    "imageLabel" INTEGER NOT NULL,
    "op" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateIndex
CREATE INDEX "IndexFeed_modelId_position_idx" ON "IndexFeed"("modelId", "position");
