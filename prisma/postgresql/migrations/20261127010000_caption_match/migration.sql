-- AlterTable
ALTER TABLE "Image" ADD COLUMN "captionMatch" DOUBLE PRECISION;
