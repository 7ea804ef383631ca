// Drive the official Node device client (azure-iot-device + azure-iot-device-mqtt, unchanged) through
// the hub flow; print one JSON report. Run with NODE_PATH=.cache/sdk/node/node_modules.
//   --phase online: connect, get twin, patch reported, receive a desired patch (made through the hub's
//                   service REST API), send --messages telemetry messages, answer a direct method
//   --phase c2d:    connect and wait for one cloud-to-device message sent while offline
'use strict';
const fs = require('fs');
const https = require('https');
const crypto = require('crypto');
const { Client, Message } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');

function args() {
  const out = { messages: 100, host: 'localhost', httpsPort: 443 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = argv[i + 1];
  }
  return out;
}

function serviceCall(a, method, path, body) {
  const fields = Object.fromEntries(a.hubConnectionString.split(';').map((p) => [p.split('=')[0], p.slice(p.indexOf('=') + 1)]));
  const sr = encodeURIComponent(fields.HostName);
  const se = Math.floor(Date.now() / 1000) + 600;
  const sig = crypto.createHmac('sha256', Buffer.from(fields.SharedAccessKey, 'base64')).update(`${sr}\n${se}`).digest('base64');
  const token = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${fields.SharedAccessKeyName}`;
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: Number(a.httpsPort), servername: 'localhost', method,
      path: `${path}?api-version=2021-04-12`, ca: fs.readFileSync(a.ca),
      headers: { Authorization: token, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), 'If-Match': '*' },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function online(a, client, report) {
  await client.open();
  const twin = await client.getTwin();
  // a copy: the SDK updates these objects in place when patches arrive
  report.twin = JSON.parse(JSON.stringify({ desired: twin.properties.desired, reported: twin.properties.reported }));
  await new Promise((resolve, reject) => twin.properties.reported.update({ driver: { phase: 'node' } }, (e) => (e ? reject(e) : resolve())));
  const patched = new Promise((resolve) => {
    twin.on('properties.desired', (delta) => { if (delta.driverPatch !== undefined) resolve(delta); });
  });
  // The listener subscribes in the background; a patch made before its SUBACK is not pushed (the
  // hub queues no desired patches), so patch again until one arrives.
  report.desired_patch = null;
  for (let attempt = 0; attempt < 5 && report.desired_patch === null; attempt += 1) {
    await wait(300);
    const patchResult = await serviceCall(a, 'PATCH', `/twins/${a.deviceId}`, { properties: { desired: { driverPatch: 9 } } });
    report.desired_patch_status = patchResult.status;
    report.desired_patch = await Promise.race([patched, wait(3000).then(() => null)]);
  }
  for (let seq = 0; seq < Number(a.messages); seq += 1) {
    const message = new Message(JSON.stringify({ seq }));
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('seq', String(seq));
    await client.sendEvent(message);
  }
  report.sent = Number(a.messages);
  client.onDeviceMethod('echo', (request, response) => response.send(200, { echo: request.payload }, () => {}));
  await wait(500);
  const result = await serviceCall(a, 'POST', `/twins/${a.deviceId}/methods`, { methodName: 'echo', payload: { x: 1 }, responseTimeoutInSeconds: 30 });
  report.method = result.body;
}

async function receiveC2d(client, report) {
  const received = new Promise((resolve) => {
    client.on('message', (message) => {
      client.complete(message, () => {});
      resolve({ data: message.data.toString(), message_id: message.messageId });
    });
  });
  await client.open();
  report.c2d = await Promise.race([received, wait(15000).then(() => null)]);
  report.c2d_received = report.c2d !== null;
}

async function main() {
  const a = args();
  const transport = a.websockets === 'true' ? MqttWs : Mqtt;
  const client = Client.fromConnectionString(`HostName=${a.host};DeviceId=${a.deviceId};SharedAccessKey=${a.key}`, transport);
  client.setOptions({ ca: fs.readFileSync(a.ca, 'utf8') });
  const report = { client: 'node azure-iot-device-mqtt', phase: a.phase };
  const started = Date.now();
  try {
    if (a.phase === 'online') await online(a, client, report);
    else await receiveC2d(client, report);
    report.ok = true;
  } catch (e) {
    report.ok = false;
    report.error = `${e.name}: ${e.message}`;
  }
  try { await client.close(); } catch (e) { /* closing is best effort */ }
  report.seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify(report));
  process.exit(report.ok ? 0 : 1);
}

main();
