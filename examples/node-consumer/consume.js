// A consumer of Vigil's topics in another language: reads vigil.events and vigil.detections
// from the earliest offset (read_committed, kafkajs's default), validates every message
// against the JSON Schema Vigil publishes for its type at its schema_version
// (schemas/json/<topic>/<event_type>.v<schema_version>.schema.json, draft 2020-12: a topic
// may hold several versions of a type, each valid under its own), prints one line per
// security event, and at the end one JSON line of what it counted. Exits 1 if any message
// does not validate or has a version it has no schema for.
//
//   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 node consume.js [--idle-ms 5000]
"use strict";

const fs = require("fs");
const path = require("path");
const { Kafka, logLevel } = require("kafkajs");
const Ajv2020 = require("ajv/dist/2020");
const addFormats = require("ajv-formats");

const TOPICS = ["vigil.events", "vigil.detections"];
const SCHEMAS = process.env.VIGIL_SCHEMAS || path.resolve(__dirname, "../../schemas/json");
const brokers = (process.env.KAFKA_BOOTSTRAP_SERVERS || "127.0.0.1:9092").split(",");
const idleFlag = process.argv.indexOf("--idle-ms");
const IDLE_MS = idleFlag > 0 ? Number(process.argv[idleFlag + 1]) : 5000;

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
const validators = new Map();

// The validator of one type at one version on a topic, or null where none is published.
function validatorFor(topic, eventType, version) {
  const name = `${eventType}.v${version}.schema.json`;
  const key = `${topic}/${name}`;
  if (!validators.has(key)) {
    const file = path.join(SCHEMAS, topic, name);
    const known = /^\w+$/.test(String(eventType)) && Number.isInteger(version) && fs.existsSync(file);
    validators.set(key, known ? ajv.compile(JSON.parse(fs.readFileSync(file, "utf8"))) : null);
  }
  return validators.get(key);
}

const counted = { validated: Object.fromEntries(TOPICS.map((t) => [t, 0])), invalid: [], events: 0 };

async function main() {
  const kafka = new Kafka({ clientId: "vigil-node-example", brokers, logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({ groupId: `vigil-node-example-${process.pid}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topics: TOPICS, fromBeginning: true });
  let last = Date.now();
  let assigned = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    assigned = true;
    last = Date.now();
  });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      last = Date.now();
      let value;
      try {
        value = JSON.parse(message.value.toString("utf8"));
      } catch (error) {
        counted.invalid.push({ topic, partition, offset: message.offset, errors: [String(error)] });
        return;
      }
      const validate = validatorFor(topic, value.event_type, value.schema_version);
      if (validate === null) {
        const errors = [`no schema for ${value.event_type} v${value.schema_version} on ${topic}`];
        counted.invalid.push({ topic, partition, offset: message.offset, errors });
        return;
      }
      if (!validate(value)) {
        counted.invalid.push({ topic, partition, offset: message.offset, errors: validate.errors });
        return;
      }
      counted.validated[topic] += 1;
      if (value.event_type === "SecurityEventRecorded") {
        counted.events += 1;
        console.log(
          `EVENT ${value.camera_id} ${value.risk_level} ${value.risk_score} v${value.analysis_version} ${value.summary}`,
        );
      }
    },
  });
  // Done once caught up: assigned, and nothing new for IDLE_MS.
  while (!assigned || Date.now() - last < IDLE_MS) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await consumer.disconnect();
  console.log(JSON.stringify(counted));
  process.exit(counted.invalid.length ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(2);
});
