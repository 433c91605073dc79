#!/usr/bin/env node
// kafkajs_admin.js PORT [TOPIC_PREFIX] - an operator's topic administration
// with kafkajs 2.2.4 against the broker on 127.0.0.1:PORT.
//
// Run by compat-tests/run.py, which asserts on what this prints: one JSON
// object on stdout with the result of every step, in order. A step that throws
// ends the story; the object then carries {"failed": step, "error": {...}}
// and the process exits 1. kafkajs's own log lines go to stderr as JSON.
//
// kafkajs 2.2.4 picks the highest version both sides support, never a
// flexible one for these APIs (CreateTopics <= v3, DeleteTopics <= v3,
// Metadata <= v6, DescribeConfigs <= v2, AlterConfigs <= v1,
// CreatePartitions <= v1), and probes ApiVersions v2 -> v1 -> v0.
'use strict'

const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')

const STORY_TIMEOUT_MS = 45000

const port = Number(process.argv[2])
const prefix = process.argv[3] || 'kjs'
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: kafkajs_admin.js PORT [TOPIC_PREFIX]')
  process.exit(2)
}

const result = { steps: [] }

function finish (code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code))
}

// A hard bound on the whole story, whatever kafkajs's retries do.
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

// step(name, fn): runs fn, records its value under result[name].
async function step (name, fn) {
  result.steps.push(name)
  try {
    result[name] = await fn()
  } catch (e) {
    e.step = name
    throw e
  }
}

// expectError(name, fn): fn must throw; records the error (and whether it threw).
async function expectError (name, fn) {
  result.steps.push(name)
  try {
    const value = await fn()
    result[name] = { threw: false, value }
  } catch (e) {
    result[name] = { threw: true, error: errorSummary(e) }
  }
}

function topicConfigs (admin, topic, configNames) {
  return admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }]
  })
}

async function main () {
  const kafka = new Kafka({
    clientId: 'runnel-compat-kafkajs',
    brokers: [`127.0.0.1:${port}`],
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, label, log }) =>
      console.error(JSON.stringify({ level: label, namespace, ...log }))
  })
  const admin = kafka.admin()
  const topic = `${prefix}-orders`
  const other = `${prefix}-audit`

  await step('connect', () => admin.connect())
  await step('created', () => admin.createTopics({
    waitForLeaders: true,
    timeout: 10000,
    topics: [
      {
        topic,
        numPartitions: 2,
        replicationFactor: 1,
        configEntries: [
          { name: 'retention.ms', value: '3600000' },
          { name: 'cleanup.policy', value: 'compact' }
        ]
      },
      { topic: other, numPartitions: 1, replicationFactor: 1 }
    ]
  }))
  // kafkajs answers false (no throw) when every topic already exists.
  await step('createdAgain', () => admin.createTopics({
    waitForLeaders: false,
    topics: [{ topic, numPartitions: 2, replicationFactor: 1 }]
  }))
  await expectError('createReplicationFactor3', () => admin.createTopics({
    waitForLeaders: false,
    topics: [{ topic: `${prefix}-rf3`, numPartitions: 1, replicationFactor: 3 }]
  }))
  await step('listAfterCreate', () => admin.listTopics())
  await step('metadataAfterCreate', () => admin.fetchTopicMetadata({ topics: [topic, other] }))
  await step('configs', () => topicConfigs(admin, topic, ['retention.ms', 'cleanup.policy', 'segment.bytes']))
  await step('allConfigs', () => topicConfigs(admin, other, undefined))
  await step('altered', () => admin.alterConfigs({
    validateOnly: false,
    resources: [{
      type: ConfigResourceTypes.TOPIC,
      name: topic,
      configEntries: [{ name: 'retention.ms', value: '7200000' }]
    }]
  }))
  await step('configsAfterAlter', () => topicConfigs(admin, topic, ['retention.ms', 'cleanup.policy']))
  await step('partitionsCreated', () => admin.createPartitions({
    topicPartitions: [{ topic, count: 4 }]
  }))
  await step('metadataAfterPartitions', () => admin.fetchTopicMetadata({ topics: [topic] }))
  await expectError('shrinkPartitions', () => admin.createPartitions({
    topicPartitions: [{ topic, count: 1 }]
  }))
  await step('deleted', () => admin.deleteTopics({ topics: [topic], timeout: 10000 }))
  // Kafka applies a deletion to its metadata cache just after answering:
  // poll a bounded while for the topic to leave the listing.
  await step('listAfterDelete', async () => {
    let topics = []
    for (let i = 0; i < 50; i++) {
      topics = await admin.listTopics()
      if (!topics.includes(topic)) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return topics
  })
  await step('disconnect', () => admin.disconnect())
}

main().then(
  () => finish(0),
  (e) => {
    result.failed = e.step || 'unknown'
    result.error = errorSummary(e)
    finish(1)
  }
)
