/* global document */
/**
 * A generated sample scene, drawn on a canvas in the browser (no image file shipped): flat shapes,
 * a fine checkerboard and stripes, so that the three operators' differences show, plus boxes that do
 * not sit on the feature grid.
 */

export const SAMPLE_WIDTH = 640;
export const SAMPLE_HEIGHT = 480;

/** Boxes (xyxy, image pixels) around objects of the scene, deliberately off any stride-8/16/32 grid. */
export const SAMPLE_BOXES = [
  [83, 179, 251, 389],
  [301, 245, 427, 371],
  [467, 53, 589, 171],
  [523, 331, 549, 357],
];

/** Draw the sample scene; returns the canvas (`SAMPLE_WIDTH × SAMPLE_HEIGHT`). */
export function drawSampleScene() {
  const canvas = document.createElement('canvas');
  canvas.width = SAMPLE_WIDTH;
  canvas.height = SAMPLE_HEIGHT;
  const ctx = canvas.getContext('2d');

  const sky = ctx.createLinearGradient(0, 0, 0, 300);
  sky.addColorStop(0, '#9cc9ef');
  sky.addColorStop(1, '#e6f1fa');
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, SAMPLE_WIDTH, 300);
  const ground = ctx.createLinearGradient(0, 300, 0, SAMPLE_HEIGHT);
  ground.addColorStop(0, '#b7c98a');
  ground.addColorStop(1, '#6f8a45');
  ctx.fillStyle = ground;
  ctx.fillRect(0, 300, SAMPLE_WIDTH, SAMPLE_HEIGHT - 300);

  // Sun.
  ctx.fillStyle = '#f2a33a';
  ctx.beginPath();
  ctx.arc(528, 112, 56, 0, 2 * Math.PI);
  ctx.fill();

  // House: wall, roof, door, window.
  ctx.fillStyle = '#3d6fb6';
  ctx.fillRect(95, 255, 145, 130);
  ctx.fillStyle = '#8c2f39';
  ctx.beginPath();
  ctx.moveTo(83, 259);
  ctx.lineTo(167, 183);
  ctx.lineTo(251, 259);
  ctx.closePath();
  ctx.fill();
  ctx.fillStyle = '#2b2118';
  ctx.fillRect(151, 315, 34, 70);
  ctx.fillStyle = '#fff7d6';
  ctx.fillRect(113, 279, 26, 26);
  ctx.fillRect(197, 279, 26, 26);

  // Checkerboard: high spatial frequency, where pooling choices matter most.
  const cell = 9;
  for (let j = 0; j < 14; j += 1) {
    for (let i = 0; i < 14; i += 1) {
      ctx.fillStyle = (i + j) % 2 === 0 ? '#1d1d1d' : '#f4f4f4';
      ctx.fillRect(301 + i * cell, 245 + j * cell, cell, cell);
    }
  }

  // Stripes in a tilted square.
  ctx.save();
  ctx.translate(410, 120);
  ctx.rotate(Math.PI / 7);
  ctx.beginPath();
  ctx.rect(-45, -45, 90, 90);
  ctx.clip();
  for (let k = -45; k < 45; k += 10) {
    ctx.fillStyle = '#5b3a8c';
    ctx.fillRect(k, -45, 5, 90);
  }
  ctx.restore();

  // A small object, smaller than a typical feature cell.
  ctx.fillStyle = '#c0392b';
  ctx.beginPath();
  ctx.arc(536, 344, 11, 0, 2 * Math.PI);
  ctx.fill();

  return canvas;
}
