#!/usr/bin/env node
// kafkajs_group.js PORT TOPIC GROUP EXPECTED [SESSION_MS] - a kafkajs 2.2.4
// service reading TOPIC as consumer group GROUP from the broker on
// 127.0.0.1:PORT, from the beginning, until it has EXPECTED records; then it
// disconnects (which commits what it resolved).
//
// Prints one JSON object on stdout: {"join": <the GROUP_JOIN event payload>,
// "messages": [{partition, offset, key, value}, ...] in arrival order}, or
// with {"failed": step, "error": {...}} and exit code 1. kafkajs logs to
// stderr as JSON. compat-tests/groups.py checks the records and the offsets
// the group committed.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const STORY_TIMEOUT_MS = 40000

const port = Number(process.argv[2])
const topic = process.argv[3]
const groupId = process.argv[4]
const expected = Number(process.argv[5])
const sessionTimeout = Number(process.argv[6] || 6000)
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !topic || !groupId ||
    !Number.isInteger(expected) || expected <= 0) {
  console.error('usage: kafkajs_group.js PORT TOPIC GROUP EXPECTED [SESSION_MS]')
  process.exit(2)
}

const result = { messages: [], join: null }
let currentStep = 'start'

function finish (code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code))
}

setTimeout(() => {
  result.failed = result.failed || `timeout in ${currentStep}`
  result.error = { message: `story did not finish within ${STORY_TIMEOUT_MS} ms (${result.messages.length} of ${expected} records)` }
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

async function main () {
  const kafka = new Kafka({
    clientId: 'runnel-compat-kafkajs-group',
    brokers: [`127.0.0.1:${port}`],
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, label, log }) =>
      console.error(JSON.stringify({ level: label, namespace, ...log }))
  })
  const consumer = kafka.consumer({ groupId, sessionTimeout, heartbeatInterval: 500, maxWaitTimeInMs: 500 })
  consumer.on(consumer.events.GROUP_JOIN, (e) => { result.join = e.payload })
  let done
  const all = new Promise((resolve) => { done = resolve })
  currentStep = 'connect'
  await consumer.connect()
  try {
    currentStep = 'subscribe'
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    currentStep = 'run'
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        result.messages.push({
          partition,
          offset: message.offset,
          key: message.key === null ? null : message.key.toString(),
          value: message.value === null ? null : message.value.toString()
        })
        if (result.messages.length >= expected) done()
      }
    })
    currentStep = 'consume'
    await all
    // A little longer: anything past EXPECTED is a record read twice.
    await new Promise((resolve) => setTimeout(resolve, 1000))
  } finally {
    currentStep = 'disconnect'
    await consumer.disconnect()
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
