// MQTT.js (npm mqtt) under Node over WebSocket, driven by tests/host/test_ws_mqttjs.py:
//   node mqttjs_client.js <ws|wss url> <protocolVersion 4|5> <topic> <reply topic> [<ca> <cert> <key>]
// (a wss url with the CA that signed the broker's certificate and the client's certificate and key)
// prints one JSON line per event: {"event": "connected"|"subscribed"|"message"|"error", ...};
// on the first message it publishes "echo:<payload>" to <reply topic> at QoS 1 and ends cleanly.
const mqtt = require("mqtt");
const fs = require("fs");
const [url, version, topic, reply, ca, cert, key] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const tls = ca ? { ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key),
                   rejectUnauthorized: true, servername: "localhost" } : {};
const c = mqtt.connect(url, Object.assign({ protocolVersion: Number(version),
                                            clientId: "mqttjs-" + version + "-" + process.pid,
                                            reconnectPeriod: 0, connectTimeout: 5000 }, tls));
c.on("connect", (ack) => {
  say({ event: "connected", sessionPresent: ack.sessionPresent });
  c.subscribe(topic, { qos: 1 }, (err, granted) => {
    if (err) { say({ event: "error", error: String(err) }); process.exit(1); }
    say({ event: "subscribed", granted: granted.map((g) => g.qos) });
  });
});
c.on("message", (t, payload, packet) => {
  say({ event: "message", topic: t, payload: payload.toString(), qos: packet.qos });
  c.publish(reply, "echo:" + payload.toString(), { qos: 1 }, (err) => {
    if (err) { say({ event: "error", error: String(err) }); process.exit(1); }
    c.end(false, () => { say({ event: "ended" }); process.exit(0); });
  });
});
c.on("error", (e) => { say({ event: "error", error: String(e) }); process.exit(1); });
