#!/usr/bin/env node
// kafkajs_txn.js MODE PORT ARGS... - kafkajs 2.2.4's idempotent and
// transactional producers against the broker on 127.0.0.1:PORT.
//
//   idempotent PORT TOPIC PARTITIONS SENDS PER_SEND
//       an idempotent producer (acks -1, one request in flight) makes SENDS
//       send() calls of PER_SEND messages each, round robin over the
//       partitions; every message with the offset the broker acknowledged
//   txn PORT TOPIC PARTITIONS TXN_ID PLAN PER_TXN
//       a transactional producer runs one transaction per letter of PLAN
//       (c commits, a aborts) of PER_TXN messages round robin over the
//       partitions; then two consumer groups read the topic, one with
//       readUncommitted false (kafkajs's default, read_committed) until it
//       has the committed messages, one with readUncommitted true until it
//       has every message, each a second longer to catch extras
//   eos PORT IN_TOPIC OUT_TOPIC GROUP TXN_ID EXPECTED CHUNK
//       consume-transform-produce: a read_committed consumer of GROUP reads
//       IN_TOPIC; every CHUNK records of a batch become one transaction that
//       writes them transformed to OUT_TOPIC (same partition) and sends the
//       consumer's next offset with transaction.sendOffsets(); every third
//       transaction is first tried once and aborted. After each abort and
//       each commit the group's committed offset is read (admin.fetchOffsets,
//       OffsetFetch without require_stable); after a commit until it shows
//       the sent offset, for at most 10 s. Ends after EXPECTED input records.
//
// Topics are created by the caller. Prints one JSON object on stdout, or
// with {"failed": step, "error": {...}} and exit code 1. kafkajs logs to
// stderr as JSON (level from KAFKAJS_LOG_LEVEL: ERROR, WARN, INFO, DEBUG).
// compat-tests/js_clients.py decides what is right.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const STORY_TIMEOUT_MS = 45000
const READ_MORE_MS = 1000
const COMMITTED_WAIT_MS = 10000

const [mode, portArg, ...args] = process.argv.slice(2)
const port = Number(portArg)
const need = { idempotent: 4, txn: 5, eos: 6 }
if (!(mode in need) || args.length !== need[mode] || !Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: kafkajs_txn.js idempotent PORT TOPIC PARTITIONS SENDS PER_SEND\n' +
                '       kafkajs_txn.js txn PORT TOPIC PARTITIONS TXN_ID PLAN PER_TXN\n' +
                '       kafkajs_txn.js eos PORT IN_TOPIC OUT_TOPIC GROUP TXN_ID EXPECTED CHUNK')
  process.exit(2)
}

const result = {}
let currentStep = 'start'

function finish (code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code))
}

setTimeout(() => {
  result.failed = result.failed || `timeout in ${currentStep}`
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

const kafka = new Kafka({
  clientId: 'runnel-compat-kafkajs-txn',
  brokers: [`127.0.0.1:${port}`],
  connectionTimeout: 3000,
  requestTimeout: 15000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
  logLevel: logLevel[process.env.KAFKAJS_LOG_LEVEL || 'WARN'],
  logCreator: () => ({ namespace, label, log }) =>
    console.error(JSON.stringify({ level: label, namespace, ...log }))
})

function positiveInt (s, what) {
  const n = Number(s)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${what}: ${s} is not a positive integer`)
  return n
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// The offsets each message of one send() landed at: the send's base offset
// for the message's partition plus its rank among that send's messages to it.
function acknowledged (answers, messages) {
  const base = {}
  for (const a of answers) {
    if (a.errorCode !== 0) throw new Error(`partition ${a.partition} error ${a.errorCode}`)
    base[a.partition] = BigInt(a.baseOffset)
  }
  const rank = {}
  return messages.map((m) => {
    if (base[m.partition] === undefined) throw new Error(`no answer for partition ${m.partition}`)
    const offset = base[m.partition] + (rank[m.partition] || 0n)
    rank[m.partition] = (rank[m.partition] || 0n) + 1n
    return { partition: m.partition, offset: Number(offset), value: m.value }
  })
}

async function idempotent (topic, partitions, sends, perSend) {
  result.messages = []
  currentStep = 'connect'
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect() // InitProducerId
  try {
    for (let s = 0; s < sends; s++) {
      currentStep = `send ${s}`
      const messages = []
      for (let j = 0; j < perSend; j++) {
        const i = s * perSend + j
        messages.push({ partition: i % partitions, key: `k${i}`, value: `idem-${i}` })
      }
      const answers = await producer.send({ topic, acks: -1, timeout: 10000, messages })
      result.messages.push(...acknowledged(answers, messages))
    }
  } finally {
    currentStep = 'disconnect'
    await producer.disconnect()
  }
}

// Reads TOPIC as a new group until it has `expected` messages, then a
// second longer; every message read, in arrival order.
async function consumeGroup (topic, groupId, readUncommitted, expected) {
  const consumer = kafka.consumer({ groupId, readUncommitted, sessionTimeout: 6000, heartbeatInterval: 500,
    maxWaitTimeInMs: 500 })
  const messages = []
  let done
  const all = new Promise((resolve) => { done = resolve })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        messages.push({ partition, offset: Number(message.offset), value: message.value.toString() })
        if (messages.length >= expected) done()
      }
    })
    await all
    await sleep(READ_MORE_MS)
  } finally {
    await consumer.disconnect()
  }
  return messages
}

async function txn (topic, partitions, transactionalId, plan, perTxn) {
  result.messages = []
  currentStep = 'connect'
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1,
    allowAutoTopicCreation: false })
  await producer.connect()
  try {
    for (let n = 0; n < plan.length; n++) {
      const commit = plan[n] === 'c'
      currentStep = `transaction ${n}`
      const transaction = await producer.transaction() // InitProducerId the first time
      const messages = []
      for (let i = 0; i < perTxn; i++) {
        messages.push({ partition: i % partitions, key: `k${i}`, value: `kjs-t${n}-r${i}` })
      }
      // Aborted messages too are written before the abort, so that the
      // abort marker has something to hide.
      const answers = await transaction.send({ topic, messages })
      for (const m of acknowledged(answers, messages)) result.messages.push({ txn: n, commit, ...m })
      currentStep = `${commit ? 'commit' : 'abort'} ${n}`
      if (commit) await transaction.commit()
      else await transaction.abort()
    }
  } finally {
    await producer.disconnect()
  }
  const committed = result.messages.filter((m) => m.commit).length
  currentStep = 'consume'
  const [readCommitted, readUncommitted] = await Promise.all([
    consumeGroup(topic, `${transactionalId}-committed`, false, committed),
    consumeGroup(topic, `${transactionalId}-uncommitted`, true, result.messages.length)
  ])
  result.readCommitted = readCommitted
  result.readUncommitted = readUncommitted
}

function transform (value) {
  return value.replace('in-', 'out-').toUpperCase()
}

async function committedOffset (admin, groupId, topic, partition) {
  const topics = await admin.fetchOffsets({ groupId, topics: [topic] })
  for (const t of topics) {
    if (t.topic !== topic) continue
    for (const p of t.partitions) {
      if (p.partition === partition) return Number(p.offset)
    }
  }
  return null
}

async function eos (inTopic, outTopic, groupId, transactionalId, expected, chunk) {
  result.transactions = []
  const admin = kafka.admin()
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1,
    allowAutoTopicCreation: false })
  const consumer = kafka.consumer({ groupId, readUncommitted: false, sessionTimeout: 10000,
    heartbeatInterval: 500, maxWaitTimeInMs: 500 })
  currentStep = 'connect'
  await admin.connect()
  await producer.connect()
  await consumer.connect()
  let processed = 0
  let n = 0
  let done
  let failed
  const finished = new Promise((resolve, reject) => { done = resolve; failed = reject })

  // One transaction: the chunk transformed to OUT_TOPIC and the input's next
  // offset sent to the transaction.
  async function attempt (partition, messages, commit) {
    const next = String(Number(messages[messages.length - 1].offset) + 1)
    const transaction = await producer.transaction()
    await transaction.send({
      topic: outTopic,
      messages: messages.map((m) => ({ partition, key: `${partition}:${m.offset}`,
        value: transform(m.value.toString()) }))
    })
    await transaction.sendOffsets({ consumerGroupId: groupId,
      topics: [{ topic: inTopic, partitions: [{ partition, offset: next }] }] })
    const entry = { txn: n, partition, first: Number(messages[0].offset), next: Number(next), commit }
    if (!commit) {
      await transaction.abort()
      entry.committedAfter = await committedOffset(admin, groupId, inTopic, partition)
    } else {
      await transaction.commit()
      // The offsets become committed when the coordinator writes the
      // transaction's markers, just after EndTxn is answered (Kafka too).
      const deadline = Date.now() + COMMITTED_WAIT_MS
      entry.polls = 0
      for (;;) {
        entry.committedAfter = await committedOffset(admin, groupId, inTopic, partition)
        entry.polls++
        if (entry.committedAfter === Number(next) || Date.now() > deadline) break
        await sleep(100)
      }
    }
    result.transactions.push(entry)
  }

  currentStep = 'subscribe'
  await consumer.subscribe({ topics: [inTopic], fromBeginning: true })
  currentStep = 'run'
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      try {
        for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += chunk) {
          const messages = batch.messages.slice(i, i + chunk)
          currentStep = `transaction ${n} over ${inTopic}-${batch.partition}@${messages[0].offset}`
          if (n % 3 === 1) await attempt(batch.partition, messages, false)
          await attempt(batch.partition, messages, true)
          n++
          resolveOffset(messages[messages.length - 1].offset)
          await heartbeat()
          processed += messages.length
          if (processed >= expected) done()
        }
      } catch (e) {
        failed(e)
        throw e
      }
    }
  })
  try {
    currentStep = 'transform'
    await finished
  } finally {
    await consumer.disconnect()
    await producer.disconnect()
    await admin.disconnect()
  }
  result.processed = processed
}

async function main () {
  if (mode === 'idempotent') {
    await idempotent(args[0], positiveInt(args[1], 'PARTITIONS'), positiveInt(args[2], 'SENDS'),
      positiveInt(args[3], 'PER_SEND'))
  } else if (mode === 'txn') {
    if (!/^[ca]+$/.test(args[3])) throw new Error(`PLAN ${args[3]}: want letters c and a`)
    await txn(args[0], positiveInt(args[1], 'PARTITIONS'), args[2], args[3], positiveInt(args[4], 'PER_TXN'))
  } else {
    await eos(args[0], args[1], args[2], args[3], positiveInt(args[4], 'EXPECTED'), positiveInt(args[5], 'CHUNK'))
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
