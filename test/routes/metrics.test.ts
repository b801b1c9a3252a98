/** `GET /metrics` on the main port through `inject` (values: test/http/timing.test.ts; METRICS_PORT: test/http/metrics.test.ts). */
import { describe, expect, it } from 'vitest';
import { useApp } from '../support/app.js';
import { featuresField } from '../support/fixtures.js';
import { roiPoster, sampleBoxes as boxes, sampleMap as fm } from '../support/v1.js';

const server = useApp();
const roi = roiPoster(server);

describe('GET /metrics', () => {
  it('GET /metrics exposes request, stage, box, tensor and event-loop metrics', async () => {
    await roi({ features: featuresField(fm), spatialScale: 0.5, boxes });
    const r = await server.app.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    const text = r.body;
    expect(text).toMatch(/roiserve_http_requests_total\{method="POST",route="\/v1\/roi",status="200"\} \d+/);
    expect(text).toMatch(
      /roiserve_http_request_duration_seconds_bucket\{le="0.1",method="POST",route="\/v1\/roi"/,
    );
    expect(text).toMatch(/roiserve_stage_duration_seconds_count\{stage="align",route="\/v1\/roi"\} \d+/);
    expect(text).toMatch(/roiserve_boxes_processed_total\{op="warp"\} \d+/);
    // 0 here: ONNX Runtime runs the backbone, and the tfjs model of the start-up check is disposed.
    expect(text).toMatch(/roiserve_tfjs_tensors \d+/);
    expect(text).toMatch(/nodejs_eventloop_lag_seconds \d/);
  });
});
