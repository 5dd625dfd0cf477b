-- AlterTable
ALTER TABLE "Image" ADD COLUMN "takenAt" TIMESTAMP(3),
ADD COLUMN "cameraMake" TEXT,
ADD COLUMN "cameraModel" TEXT;

-- CreateIndex
CREATE INDEX "Image_status_createdAt_id_idx" ON "Image"("status", "createdAt", "id");

-- CreateIndex
CREATE INDEX "Image_takenAt_idx" ON "Image"("takenAt");
