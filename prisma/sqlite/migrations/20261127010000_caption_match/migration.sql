-- AlterTable
ALTER TABLE "Image" ADD COLUMN "captionMatch" REAL;
