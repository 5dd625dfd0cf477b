import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readCaptureInfo } from '../../src/ml/preprocess/exif-capture.js';
import { probeImage } from '../../src/ml/preprocess/image-decoder.js';

async function exifOf(ifd0: Record<string, string>, photo: Record<string, string>): Promise<Buffer> {
  const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).jpeg().withExif({ IFD0: ifd0, IFD2: photo }).toBuffer();
  return (await sharp(jpeg).metadata()).exif!;
}

describe('EXIF capture info', () => {
  it('the image decoder reads capture time and camera from the file header', async () => {
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .jpeg()
      .withExif({ IFD0: { Make: 'FUJIFILM', Model: 'X-T5' }, IFD2: { DateTimeOriginal: '2023:03:04 05:06:07', OffsetTimeOriginal: '-05:00' } })
      .toBuffer();
    expect((await probeImage(jpeg)).capture).toEqual({ takenAt: new Date('2023-03-04T10:06:07Z'), cameraMake: 'FUJIFILM', cameraModel: 'X-T5' });
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toBuffer();
    expect((await probeImage(png)).capture).toEqual({ takenAt: null, cameraMake: null, cameraModel: null });
  });

  it('adds sub-seconds, falls back to DateTimeDigitized, and tidies padded text', async () => {
    expect(readCaptureInfo(await exifOf({ Make: '  Canon  ' }, { DateTimeOriginal: '2020:01:02 03:04:05', SubSecTimeOriginal: '25' }))).toEqual({
      takenAt: new Date('2020-01-02T03:04:05.250Z'),
      cameraMake: 'Canon',
      cameraModel: null,
    });
    expect(readCaptureInfo(await exifOf({}, { DateTimeDigitized: '2018:07:08 09:10:11' })).takenAt).toEqual(new Date('2018-07-08T09:10:11Z'));
  });

  it.each([
    ['an unset camera clock', '0000:00:00 00:00:00'],
    ['a date in the future', '2999:01:01 00:00:00'],
    ['a date that is not one', 'yesterday'],
  ])('ignores %s', async (_name, value) => {
    expect(readCaptureInfo(await exifOf({ Model: 'M' }, { DateTimeOriginal: value }))).toEqual({ takenAt: null, cameraMake: null, cameraModel: 'M' });
  });

  it('never throws on a broken EXIF block (the image itself is fine)', () => {
    expect(readCaptureInfo(Buffer.from('Exif\0\0garbage that is not TIFF'))).toEqual({ takenAt: null, cameraMake: null, cameraModel: null });
    expect(readCaptureInfo(undefined)).toEqual({ takenAt: null, cameraMake: null, cameraModel: null });
  });
});
