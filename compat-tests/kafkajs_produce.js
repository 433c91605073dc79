#!/usr/bin/env node
// kafkajs_produce.js PORT TOPIC SENDS PER_SEND - a service publishing with
// kafkajs 2.2.4 to the broker on 127.0.0.1:PORT.
//
// Creates TOPIC with 3 partitions, then makes SENDS producer.send() calls of
// PER_SEND messages each with acks -1, alternating no compression and gzip
// (the only codec kafkajs has without plugins). Messages carry keys (a few
// null), values (a few null: tombstones; some non-ASCII), headers (some
// none, one repeated key from an array value) and explicit timestamps, and
// name their partition so where each lands is known.
//
// Prints one JSON object on stdout: {"messages": [...]} where every message
// has the offset the broker acknowledged for it (the send's baseOffset for
// its partition plus its rank among that send's messages to the partition),
// or {"failed": step, "error": {...}} with exit code 1. kafkajs logs to
// stderr as JSON.
//
// kafkajs 2.2.4 consumes only through a consumer group; compat-tests/logs.py
// reads the messages back without one, with kafka-python and kcat.
'use strict'

const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const STORY_TIMEOUT_MS = 45000
const PARTITIONS = 3

const port = Number(process.argv[2])
const topic = process.argv[3]
const sends = Number(process.argv[4] || 10)
const perSend = Number(process.argv[5] || 100)
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !topic ||
    !Number.isInteger(sends) || sends <= 0 || !Number.isInteger(perSend) || perSend <= 0) {
  console.error('usage: kafkajs_produce.js PORT TOPIC [SENDS] [PER_SEND]')
  process.exit(2)
}

const result = { messages: [], sends: [] }
let currentStep = 'start'

function finish (code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code))
}

setTimeout(() => {
  result.failed = result.failed || 'timeout'
  result.error = { message: `story did not finish within ${STORY_TIMEOUT_MS} ms` }
  finish(1)
}, STORY_TIMEOUT_MS).unref()

function errorSummary (e) {
  return {
    name: e.name,
    type: e.type,
    code: e.code,
    message: e.message,
    errors: Array.isArray(e.errors) ? e.errors.map(errorSummary) : undefined
  }
}

// Message i of the story; deterministic, so a failure can be replayed.
function message (i, baseTimestampMs) {
  const m = {
    partition: i % PARTITIONS,
    key: i % 17 === 5 ? null : `kjs-key-${i}`,
    value: i % 13 === 7 ? null : `kjs value ${i} ${'ünïcødé ✓ 日本 '.repeat(i % 4)}${'z'.repeat(i % 97)}`,
    timestamp: String(baseTimestampMs + i)
  }
  // [name, value] pairs in the order kafkajs writes them.
  m.headerPairs = []
  if (i % 7 !== 3) {
    m.headers = { source: 'kafkajs', seq: String(i) }
    m.headerPairs.push(['source', 'kafkajs'], ['seq', String(i)])
    if (i % 5 === 0) {
      m.headers.multi = ['first', 'second'] // one header key, twice
      m.headerPairs.push(['multi', 'first'], ['multi', 'second'])
    }
  }
  return m
}

async function main () {
  const kafka = new Kafka({
    clientId: 'runnel-compat-kafkajs',
    brokers: [`127.0.0.1:${port}`],
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, label, log }) =>
      console.error(JSON.stringify({ level: label, namespace, ...log }))
  })
  currentStep = 'admin'
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    waitForLeaders: true,
    timeout: 10000,
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }]
  })
  await admin.disconnect()

  currentStep = 'producer'
  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false, maxInFlightRequests: 1 })
  await producer.connect()
  const baseTimestampMs = Date.now() - 60000
  try {
    for (let s = 0; s < sends; s++) {
      currentStep = `send ${s}`
      const codec = s % 2 === 0 ? 'none' : 'gzip'
      const batch = []
      for (let j = 0; j < perSend; j++) batch.push(message(s * perSend + j, baseTimestampMs))
      const answers = await producer.send({
        topic,
        acks: -1,
        timeout: 10000,
        compression: codec === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
        messages: batch.map(({ partition, key, value, headers, timestamp }) =>
          ({ partition, key, value, headers, timestamp }))
      })
      result.sends.push({ codec, answers })
      const base = {}
      for (const a of answers) {
        if (a.errorCode !== 0) throw new Error(`send ${s}: partition ${a.partition} error ${a.errorCode}`)
        base[a.partition] = BigInt(a.baseOffset)
      }
      const rank = {}
      for (const m of batch) {
        if (base[m.partition] === undefined) throw new Error(`send ${s}: no answer for partition ${m.partition}`)
        rank[m.partition] = (rank[m.partition] || 0n)
        result.messages.push({
          partition: m.partition,
          offset: Number(base[m.partition] + rank[m.partition]),
          key: m.key,
          value: m.value,
          headers: m.headerPairs,
          timestamp: Number(m.timestamp),
          codec
        })
        rank[m.partition] += 1n
      }
    }
  } finally {
    await producer.disconnect()
  }
}

main().then(
  () => finish(0),
  (e) => {
    result.failed = currentStep
    result.error = errorSummary(e)
    finish(1)
  }
)
