-- CreateTable
CREATE TABLE "Image" (
    "label" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "id" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'READY',
    "mimeType" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "byteSize" INTEGER NOT NULL,
    "caption" TEXT,
    "captionModelId" TEXT,
    "altText" TEXT,
    "altTextMatch" REAL,
    "metadata" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "ImageEmbedding" (
    "imageLabel" INTEGER NOT NULL,
    "modelId" TEXT NOT NULL,
    "dim" INTEGER NOT NULL,
    "vector" BLOB NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,

    PRIMARY KEY ("imageLabel", "modelId"),
    CONSTRAINT "ImageEmbedding_imageLabel_fkey" FOREIGN KEY ("imageLabel") REFERENCES "Image" ("label") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "Image_id_key" ON "Image"("id");

-- CreateIndex
CREATE UNIQUE INDEX "Image_sha256_key" ON "Image"("sha256");

-- CreateIndex
CREATE INDEX "Image_status_label_idx" ON "Image"("status", "label");

-- CreateIndex
CREATE INDEX "ImageEmbedding_modelId_idx" ON "ImageEmbedding"("modelId");
