/* global window, document, ResizeObserver */
/**
 * The box editor: an image on a canvas with boxes that can be drawn, moved, resized and deleted with the
 * mouse (or touch/pen), or with the keyboard. Boxes are `[x1, y1, x2, y2]` in image pixels (xyxy, the
 * API's canonical format); the canvas is only a scaled view of them.
 */

/**
 * Box colours, distinguishable with the common colour-vision deficiencies (Okabe–Ito and Tol), never the
 * diff sheet's colours for lost (orange #E69F00), gained (blue #0072B2) or the read outline (sky blue
 * #56B4E9): a box drawn in one of those would read as a region of the sheet.
 */
export const BOX_COLOURS = ['#009E73', '#CC79A7', '#D55E00', '#000000', '#F0E442', '#882255', '#6B6B6B'];

/** Handle hit radius and minimum drawn size, in CSS pixels. */
const HANDLE_PX = 9;
const MIN_DRAG_PX = 4;

/** Label text: white on the dark colours (black, wine, grey), black on the others (contrast ≥ 4.5). */
const WHITE_TEXT_ON = new Set(['#000000', '#882255', '#6B6B6B']);

/** Colour of box `index` (cycles). */
export function boxColour(index) {
  return BOX_COLOURS[index % BOX_COLOURS.length];
}

export class BoxEditor {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{ onChange?: (boxes: number[][]) => void, onHover?: (index: number) => void,
   *           onStatus?: (text: string) => void }} callbacks
   */
  constructor(canvas, callbacks = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.callbacks = callbacks;
    /** @type {CanvasImageSource | null} */
    this.image = null;
    this.imageWidth = 0;
    this.imageHeight = 0;
    /** @type {number[][]} */
    this.boxes = [];
    this.selected = -1;
    this.hovered = -1;
    /** Index highlighted from outside (a table row under the pointer), or -1. */
    this.highlighted = -1;
    this.stride = 0;
    this.showGrid = true;
    this.scale = 1;
    /** Current pointer gesture: null or { kind: 'new'|'move'|'resize', ... }. */
    this.drag = null;

    canvas.addEventListener('pointerdown', (e) => this.#onPointerDown(e));
    canvas.addEventListener('pointermove', (e) => this.#onPointerMove(e));
    canvas.addEventListener('pointerup', (e) => this.#onPointerUp(e));
    canvas.addEventListener('pointercancel', () => this.#cancelDrag());
    canvas.addEventListener('pointerleave', () => {
      if (!this.drag) this.#setHovered(-1);
    });
    canvas.addEventListener('keydown', (e) => this.#onKeyDown(e));
    canvas.addEventListener('focus', () => this.draw());
    canvas.addEventListener('blur', () => this.draw());
    new ResizeObserver(() => this.#fit()).observe(canvas.parentElement);
  }

  /** Show a new image; boxes are kept (the caller replaces them if they belong to the old image). */
  setImage(image, width, height) {
    this.image = image;
    this.imageWidth = width;
    this.imageHeight = height;
    this.#fit();
  }

  /** Replace all boxes (image pixels, xyxy). */
  setBoxes(boxes) {
    this.boxes = boxes.map((b) => b.slice(0, 4));
    this.selected = Math.min(this.selected, this.boxes.length - 1);
    this.hovered = -1;
    this.draw();
    this.#changed();
  }

  setStride(stride) {
    this.stride = stride;
    this.draw();
  }

  setShowGrid(show) {
    this.showGrid = show;
    this.draw();
  }

  /** Emphasise box `index` (e.g. while its table row is hovered); -1 clears. */
  highlight(index) {
    this.highlighted = index;
    this.draw();
  }

  /** Size the canvas to its container (CSS pixels) and the device pixel ratio, keeping the aspect. */
  #fit() {
    if (!this.imageWidth) return;
    const container = this.canvas.parentElement;
    const maxWidth = Math.max(container.clientWidth, 200);
    const maxHeight = Math.max(window.innerHeight * 0.7, 240);
    this.scale = Math.min(maxWidth / this.imageWidth, maxHeight / this.imageHeight, 4);
    const cssWidth = Math.round(this.imageWidth * this.scale);
    const cssHeight = Math.round(this.imageHeight * this.scale);
    const dpr = window.devicePixelRatio || 1;
    this.canvas.style.width = `${cssWidth}px`;
    this.canvas.style.height = `${cssHeight}px`;
    this.canvas.width = Math.round(cssWidth * dpr);
    this.canvas.height = Math.round(cssHeight * dpr);
    this.draw();
  }

  /** Pointer position in image pixels (not rounded). */
  #toImage(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [(e.clientX - rect.left) / this.scale, (e.clientY - rect.top) / this.scale];
  }

  /** Which box / handle is under image point (x, y): { index, handle } with handle 'nw'|'ne'|'sw'|'se'|'inside'. */
  #hitTest(x, y) {
    const tolerance = HANDLE_PX / this.scale;
    // The selected box first, then topmost (last drawn) first.
    const order = [...this.boxes.keys()].reverse();
    if (this.selected >= 0) order.unshift(this.selected);
    for (const i of order) {
      const [x1, y1, x2, y2] = this.boxes[i];
      const corners = { nw: [x1, y1], ne: [x2, y1], sw: [x1, y2], se: [x2, y2] };
      for (const [handle, [cx, cy]] of Object.entries(corners)) {
        if (Math.abs(x - cx) <= tolerance && Math.abs(y - cy) <= tolerance) return { index: i, handle };
      }
    }
    for (const i of order) {
      const [x1, y1, x2, y2] = this.boxes[i];
      if (x >= x1 && x <= x2 && y >= y1 && y <= y2) return { index: i, handle: 'inside' };
    }
    return null;
  }

  #clampX(x) {
    return Math.min(Math.max(Math.round(x), 0), this.imageWidth);
  }

  #clampY(y) {
    return Math.min(Math.max(Math.round(y), 0), this.imageHeight);
  }

  #onPointerDown(e) {
    if (!this.imageWidth || e.button !== 0) return;
    this.canvas.focus();
    const [x, y] = this.#toImage(e);
    const hit = this.#hitTest(x, y);
    this.canvas.setPointerCapture(e.pointerId);
    if (hit) {
      this.selected = hit.index;
      this.drag = {
        kind: hit.handle === 'inside' ? 'move' : 'resize',
        handle: hit.handle,
        start: [x, y],
        original: [...this.boxes[hit.index]],
      };
    } else {
      this.drag = {
        kind: 'new',
        start: [this.#clampX(x), this.#clampY(y)],
        startCss: [e.clientX, e.clientY],
      };
    }
    e.preventDefault();
    this.draw();
  }

  #onPointerMove(e) {
    if (!this.imageWidth) return;
    const [x, y] = this.#toImage(e);
    if (!this.drag) {
      const hit = this.#hitTest(x, y);
      this.#setHovered(hit ? hit.index : -1);
      this.canvas.style.cursor = !hit
        ? 'crosshair'
        : hit.handle === 'inside'
          ? 'move'
          : hit.handle === 'nw' || hit.handle === 'se'
            ? 'nwse-resize'
            : 'nesw-resize';
      return;
    }
    const d = this.drag;
    if (d.kind === 'new') {
      const [sx, sy] = d.start;
      const cx = this.#clampX(x);
      const cy = this.#clampY(y);
      d.current = [Math.min(sx, cx), Math.min(sy, cy), Math.max(sx, cx), Math.max(sy, cy)];
    } else if (d.kind === 'move') {
      const [x1, y1, x2, y2] = d.original;
      const w = x2 - x1;
      const h = y2 - y1;
      // Keep the box inside the image while moving (it may have been pasted partly outside: then free).
      let nx = Math.round(x1 + x - d.start[0]);
      let ny = Math.round(y1 + y - d.start[1]);
      if (x1 >= 0 && x2 <= this.imageWidth) nx = Math.min(Math.max(nx, 0), this.imageWidth - w);
      if (y1 >= 0 && y2 <= this.imageHeight) ny = Math.min(Math.max(ny, 0), this.imageHeight - h);
      this.boxes[this.selected] = [nx, ny, nx + w, ny + h];
    } else {
      let [x1, y1, x2, y2] = d.original;
      if (d.handle.includes('w')) x1 = this.#clampX(x);
      if (d.handle.includes('e')) x2 = this.#clampX(x);
      if (d.handle.includes('n')) y1 = this.#clampY(y);
      if (d.handle.includes('s')) y2 = this.#clampY(y);
      this.boxes[this.selected] = [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)];
    }
    this.draw();
  }

  #onPointerUp(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    if (d.kind === 'new') {
      const moved = Math.hypot(e.clientX - d.startCss[0], e.clientY - d.startCss[1]);
      if (d.current && moved >= MIN_DRAG_PX && d.current[2] > d.current[0] && d.current[3] > d.current[1]) {
        this.boxes.push(d.current);
        this.selected = this.boxes.length - 1;
        this.#status(`Added box ${this.selected + 1}: ${d.current.join(', ')}`);
        this.#changed();
      } else {
        this.selected = -1; // a click on empty space deselects
      }
    } else {
      this.#status(`Box ${this.selected + 1}: ${this.boxes[this.selected].join(', ')}`);
      this.#changed();
    }
    this.draw();
  }

  #cancelDrag() {
    if (this.drag && this.drag.kind !== 'new') this.boxes[this.selected] = this.drag.original;
    this.drag = null;
    this.draw();
  }

  #onKeyDown(e) {
    if (!this.imageWidth) return;
    const n = this.boxes.length;
    const key = e.key;
    if (key === 'n' || key === 'N' || key === '+') {
      // A box a quarter of the image, centred: a keyboard-only way to start.
      const w = Math.max(Math.round(this.imageWidth / 4), 1);
      const h = Math.max(Math.round(this.imageHeight / 4), 1);
      const x1 = Math.round((this.imageWidth - w) / 2);
      const y1 = Math.round((this.imageHeight - h) / 2);
      this.boxes.push([x1, y1, x1 + w, y1 + h]);
      this.selected = n;
      this.#status(`Added box ${n + 1}: ${this.boxes[n].join(', ')}`);
      this.#changed();
    } else if ((key === ']' || key === '[') && n > 0) {
      // Not Tab: Tab must keep moving focus through the page.
      const back = key === '[';
      this.selected = back ? (this.selected <= 0 ? n - 1 : this.selected - 1) : (this.selected + 1) % n;
      this.#status(`Selected box ${this.selected + 1} of ${n}: ${this.boxes[this.selected].join(', ')}`);
      this.#setHovered(this.selected);
    } else if ((key === 'Delete' || key === 'Backspace') && this.selected >= 0) {
      const removed = this.selected;
      this.boxes.splice(removed, 1);
      this.selected = Math.min(removed, this.boxes.length - 1);
      this.#status(`Deleted box ${removed + 1}; ${this.boxes.length} left`);
      this.#changed();
    } else if (key === 'Escape') {
      if (this.drag) this.#cancelDrag();
      this.selected = -1;
    } else if (key.startsWith('Arrow') && this.selected >= 0) {
      const step = e.shiftKey ? 10 : 1;
      const dx = key === 'ArrowLeft' ? -step : key === 'ArrowRight' ? step : 0;
      const dy = key === 'ArrowUp' ? -step : key === 'ArrowDown' ? step : 0;
      let [x1, y1, x2, y2] = this.boxes[this.selected];
      if (e.altKey) {
        // Resize from the bottom-right corner, never below 1 px.
        x2 = Math.max(x1 + 1, x2 + dx);
        y2 = Math.max(y1 + 1, y2 + dy);
      } else {
        x1 += dx;
        x2 += dx;
        y1 += dy;
        y2 += dy;
      }
      this.boxes[this.selected] = [x1, y1, x2, y2];
      this.#status(`Box ${this.selected + 1}: ${this.boxes[this.selected].join(', ')}`);
      this.#changed();
    } else {
      return;
    }
    e.preventDefault();
    this.draw();
  }

  #setHovered(index) {
    if (index === this.hovered) return;
    this.hovered = index;
    this.draw();
    this.callbacks.onHover?.(index);
  }

  #changed() {
    this.callbacks.onChange?.(this.boxes.map((b) => [...b]));
  }

  #status(text) {
    this.callbacks.onStatus?.(text);
  }

  /** Repaint: image, feature grid, boxes (numbered, in their colours), handles of the selected box. */
  draw() {
    const { ctx, canvas } = this;
    const dpr = canvas.width / Math.max(parseFloat(canvas.style.width) || canvas.width, 1);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.image) return;
    const s = this.scale * dpr;
    ctx.imageSmoothingEnabled = this.scale < 1;
    ctx.drawImage(this.image, 0, 0, this.imageWidth * s, this.imageHeight * s);

    if (this.showGrid && this.stride > 0) {
      // Feature cell i covers image pixels [i*stride, (i+1)*stride): the lines are the cell edges.
      ctx.save();
      ctx.lineWidth = 1;
      ctx.strokeStyle = 'rgba(255, 255, 255, 0.45)';
      ctx.setLineDash([]);
      ctx.beginPath();
      for (let x = this.stride; x < this.imageWidth; x += this.stride) {
        const px = Math.round(x * s) + 0.5;
        ctx.moveTo(px, 0);
        ctx.lineTo(px, this.imageHeight * s);
      }
      for (let y = this.stride; y < this.imageHeight; y += this.stride) {
        const py = Math.round(y * s) + 0.5;
        ctx.moveTo(0, py);
        ctx.lineTo(this.imageWidth * s, py);
      }
      ctx.stroke();
      ctx.strokeStyle = 'rgba(0, 0, 0, 0.25)';
      ctx.setLineDash([2 * dpr, 3 * dpr]);
      ctx.stroke();
      ctx.restore();
    }

    const boxes =
      this.drag?.kind === 'new' && this.drag.current ? [...this.boxes, this.drag.current] : this.boxes;
    const fontPx = Math.round(12 * dpr);
    ctx.font = `600 ${fontPx}px system-ui, sans-serif`;
    boxes.forEach(([x1, y1, x2, y2], i) => {
      const colour = boxColour(i);
      const emphasised = i === this.hovered || i === this.highlighted || i === this.selected;
      const rx = x1 * s;
      const ry = y1 * s;
      const rw = (x2 - x1) * s;
      const rh = (y2 - y1) * s;
      if (emphasised) {
        ctx.fillStyle = colour + '33';
        ctx.fillRect(rx, ry, rw, rh);
      }
      // A white halo under the coloured line keeps it visible on dark and busy images alike.
      ctx.lineWidth = (emphasised ? 5 : 4) * dpr;
      ctx.strokeStyle = 'rgba(255,255,255,0.9)';
      ctx.strokeRect(rx, ry, rw, rh);
      ctx.lineWidth = (emphasised ? 3 : 2) * dpr;
      ctx.strokeStyle = colour;
      ctx.strokeRect(rx, ry, rw, rh);

      const label = String(i + 1);
      const tw = ctx.measureText(label).width + 8 * dpr;
      const th = fontPx + 4 * dpr;
      const ty = ry - th >= 0 ? ry - th : ry;
      ctx.fillStyle = colour;
      ctx.fillRect(rx, ty, tw, th);
      ctx.fillStyle = WHITE_TEXT_ON.has(colour) ? '#ffffff' : '#000000';
      ctx.textBaseline = 'middle';
      ctx.fillText(label, rx + 4 * dpr, ty + th / 2 + 0.5);

      if (i === this.selected) {
        const hs = 4 * dpr;
        for (const [cx, cy] of [
          [rx, ry],
          [rx + rw, ry],
          [rx, ry + rh],
          [rx + rw, ry + rh],
        ]) {
          ctx.fillStyle = '#fff';
          ctx.fillRect(cx - hs - dpr, cy - hs - dpr, 2 * hs + 2 * dpr, 2 * hs + 2 * dpr);
          ctx.fillStyle = colour;
          ctx.fillRect(cx - hs, cy - hs, 2 * hs, 2 * hs);
        }
      }
    });

    if (document.activeElement === canvas) {
      // Visible keyboard focus drawn inside the canvas too (the CSS outline sits outside it).
      ctx.lineWidth = 2 * dpr;
      ctx.strokeStyle = '#1a4fd6';
      ctx.setLineDash([]);
      ctx.strokeRect(dpr, dpr, canvas.width - 2 * dpr, canvas.height - 2 * dpr);
    }
  }
}
