// compat-tests/platformatic_driver.mjs - @platformatic/kafka 1.x driven by py_clients.py.
//
//   node compat-tests/platformatic_driver.mjs STEP BOOTSTRAP [ARGS...]
//
// The steps and the JSON lines they print are py_driver.py's (and the Go
// program's, go/main.go): metadata, admin, produce, group-share,
// group-resume, idempotent, txn-produce, txn-consume. The last line is
// {"event":"done"}, or {"event":"error"} and exit status 1.
//
// Client traits the records allow for: headers are a Map, so one record
// cannot carry a header key twice; every consumer is a group member (the
// read-back steps join a group of their own, reading from the earliest
// offset); zstd needs a Node.js with zlib.zstdCompressSync (22.15+), and
// is left out (and said so, as a "codec-unavailable" event) otherwise.
// @platformatic/kafka is a devDependency in compat-tests/package.json;
// tools/deps.sh installs it.

import { Admin, Consumer, Producer } from '@platformatic/kafka'
import zlib from 'node:zlib'

const STEP_TIMEOUT_MS = 50000 // the suite kills this program later than that
const CLIENT_ID = 'runnel-compat-platformatic'

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ ...fields, event }, (_, v) => typeof v === 'bigint' ? Number(v) : v) + '\n')
}

function b64 (buf) {
  return buf == null ? null : Buffer.from(buf).toString('base64')
}

// The Kafka error code inside a client error (ProtocolError.apiCode), however deep.
function kafkaCode (err, depth = 0) {
  if (!err || depth > 5) return null
  if (typeof err.apiCode === 'number') return err.apiCode
  for (const e of err.errors ?? []) {
    const code = kafkaCode(e, depth + 1)
    if (code != null) return code
  }
  return kafkaCode(err.cause, depth + 1)
}

function describeError (err) {
  const code = kafkaCode(err)
  const inner = (err.errors ?? []).map(e => e.message + (e.apiId ? " " + e.apiId : "") + (e.errors ? " [" + e.errors.map(x => x.apiId ?? x.message).join(",") + "]" : "")).join('; ')
  return `${err.name}: ${err.message}${inner ? ' (' + inner + ')' : ''}${code != null ? ' [kafka error ' + code + ']' : ''}`
}

// Writes to a pipe are asynchronous in Node.js: exit only once they are out.
function exit (code) {
  process.stdout.write('', () => process.exit(code))
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function options (bootstrap, extra = {}) {
  return { clientId: CLIENT_ID, bootstrapBrokers: [bootstrap], timeout: 15000, retries: 30, retryDelay: 250, ...extra }
}

// The records of one codec, as go/main.go makeRecords makes them, but with
// at most one header of each key.
function makeRecords (codec, n, partitions, baseMs) {
  const recs = []
  for (let i = 0; i < n; i++) {
    const key = i % 7 === 3 ? null : i % 7 === 5 ? Buffer.alloc(0) : Buffer.from(`${codec}-key-${i}`)
    const value = i % 11 === 4 ? null : i % 13 === 6 ? Buffer.alloc(0) : Buffer.from(`${codec} value ${i}; `.repeat(1 + i % 40))
    const h = [[], [['trace', `t-${i}`]], [['one', 'first'], ['two', '']]][i % 3]
    recs.push({ p: i % partitions, o: -1, key, value, h, ts: baseMs + i * 3, codec })
  }
  return recs
}

function groupRecords (run, n, partitions) {
  const now = Date.now()
  const recs = []
  for (let i = 0; i < n; i++) {
    recs.push({ p: i % partitions, o: -1, key: Buffer.from(`k${i}`), value: Buffer.from(`${run}-${i}`), h: [], ts: now, codec: 'none' })
  }
  return recs
}

function fields (r) {
  return { p: r.p, o: r.o, key: b64(r.key), value: b64(r.value), h: r.h.map(([k, v]) => ({ k, v })), ts: r.ts, codec: r.codec }
}

function fromMessage (m) {
  const h = [...m.headers.entries()].map(([k, v]) => [k.toString(), v == null ? '' : v.toString()])
  return { p: m.partition, o: Number(m.offset), key: m.key ?? null, value: m.value ?? null, h, ts: Number(m.timestamp) }
}

function toMessage (topic, r) {
  const headers = new Map(r.h.map(([k, v]) => [Buffer.from(k), Buffer.from(v)]))
  return { topic, partition: r.p, key: r.key ?? undefined, value: r.value, headers, timestamp: BigInt(r.ts) }
}

// Sends each partition's records in one request after the other, so order
// per partition is the order of sending; a Produce answer gives the base
// offset of the records of a partition.
async function send (sender, topic, recs, extra = {}) {
  const partitions = [...new Set(recs.map(r => r.p))].sort((a, b) => a - b)
  for (const p of partitions) {
    const mine = recs.filter(r => r.p === p)
    const result = await sender.send({ messages: mine.map(r => toMessage(topic, r)), ...extra })
    const base = (result.offsets ?? []).find(o => o.topic === topic && o.partition === p)
    if (!base) throw new Error(`no offset for partition ${p} in ${JSON.stringify(result, (_, v) => typeof v === 'bigint' ? Number(v) : v)}`)
    mine.forEach((r, i) => { r.o = Number(base.offset) + i })
  }
}

async function topicEvent (admin, step, topic) {
  const md = await admin.metadata({ topics: [topic], forceUpdate: true })
  const t = md.topics.get(topic)
  if (!t) {
    emit(step, { topic, listed: false, error: null, partitions: null })
    return
  }
  const partitions = t.partitions.map((p, i) => ({ partition: i, leader: p.leader, replicas: p.replicas, isr: p.isr, error: null }))
  emit(step, { topic, listed: true, error: null, partitions })
}

async function metadata (bootstrap, topic) {
  const admin = new Admin(options(bootstrap))
  try {
    // listApis is the client's ApiVersions (v3, or v4 when offered); it then
    // uses, per API, the highest version both have.
    const apis = await admin.listApis()
    const versions = {}
    for (const a of apis) versions[a.apiKey] = [a.minVersion, a.maxVersion]
    emit('versions', { versions })
    await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 })
    const md = await admin.metadata({ topics: [topic], forceUpdate: true })
    const brokers = [...md.brokers.entries()].map(([id, b]) => ({ id, host: b.host, port: b.port }))
    emit('metadata', { brokers, controller: md.controllerId, cluster: md.id, topics: await admin.listTopics() })
    await topicEvent(admin, 'topic', topic)
  } finally {
    await admin.close()
  }
}

// DescribeConfigs; with until = [key, value], again for at most 5 s until key
// has value (Kafka applies a change to its metadata cache just after answering).
async function describe (admin, step, topic, until = null) {
  let configs = {}
  for (let i = 0; i < 50; i++) {
    const res = await admin.describeConfigs({ resources: [{ resourceType: 2, resourceName: topic }] })
    configs = {}
    for (const c of res[0].configs) configs[c.name] = { value: c.value, source: c.configSource }
    if (!until || configs[until[0]]?.value === until[1]) break
    await sleep(100)
  }
  emit(step, { error: null, configs })
}

async function adminStory (bootstrap, topic) {
  const admin = new Admin(options(bootstrap))
  const refused = async (step, fn) => {
    try {
      await fn()
      emit(step, { error: null, kafka_error: 0 })
    } catch (err) {
      emit(step, { error: describeError(err), kafka_error: kafkaCode(err) })
    }
  }
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: 3,
      replicas: 1,
      configs: [{ name: 'retention.ms', value: '3600000' }, { name: 'cleanup.policy', value: 'compact' }]
    })
    emit('create', { error: null })
    await refused('create-again', () => admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 }))
    await describe(admin, 'describe', topic)
    await admin.incrementalAlterConfigs({
      resources: [{
        resourceType: 2,
        resourceName: topic,
        configs: [{ name: 'retention.ms', configOperation: 0, value: '7200000' }, { name: 'cleanup.policy', configOperation: 1 }]
      }]
    })
    emit('alter-incremental', { error: null })
    await describe(admin, 'describe-after-alter', topic, ['retention.ms', '7200000'])
    await admin.alterConfigs({ resources: [{ resourceType: 2, resourceName: topic, configs: [{ name: 'segment.bytes', value: '1048576' }] }] })
    emit('alter-state', { error: null })
    await describe(admin, 'describe-after-state', topic, ['segment.bytes', '1048576'])
    await admin.createPartitions({ topics: [{ name: topic, count: 5 }] })
    emit('create-partitions', { error: null })
    await refused('create-partitions-fewer', () => admin.createPartitions({ topics: [{ name: topic, count: 2 }] }))
    for (let i = 0; i < 50; i++) {
      const md = await admin.metadata({ topics: [topic], forceUpdate: true })
      if (md.topics.get(topic)?.partitions.length === 5) break
      await sleep(100)
    }
    await topicEvent(admin, 'after-partitions', topic)
    await admin.deleteTopics({ topics: [topic] })
    emit('delete', { error: null })
    for (let i = 0; i < 50; i++) {
      if (!(await admin.listTopics()).includes(topic)) {
        emit('gone', { after_polls: i })
        return
      }
      await sleep(100)
    }
    emit('gone', { error: 'still listed after 5 s' })
  } finally {
    await admin.close()
  }
}

// Reads from the earliest offset as the only member of a group of its own,
// until each partition gave counts[p] records (or, without counts, reached
// its end offset); prints them and the end offsets.
async function readBack (bootstrap, topic, partitions, isolationLevel = 0, counts = null) {
  const consumer = new Consumer(options(bootstrap, { groupId: `${CLIENT_ID}-read-${topic}-${Date.now()}` }))
  try {
    const ends = (await consumer.listOffsets({ topics: [topic], isolationLevel })).get(topic).map(Number)
    const want = counts ?? ends
    const got = new Array(partitions).fill(0)
    const need = () => got.some((n, p) => n < want[p])
    if (!need()) return ends
    const stream = await consumer.consume({
      topics: [topic], mode: 'earliest', autocommit: false, isolationLevel, maxWaitTime: 200, sessionTimeout: 10000, heartbeatInterval: 500
    })
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${JSON.stringify(got)} of ${topic}, want ${JSON.stringify(want)}`)), 30000)
      stream.on('error', err => { clearTimeout(timer); reject(err) })
      stream.on('data', m => {
        if (got[m.partition] < want[m.partition]) {
          got[m.partition]++
          emit('got', fields(fromMessage(m)))
        }
        if (!need()) { clearTimeout(timer); resolve() }
      })
    })
    await stream.close()
    ends.forEach((o, p) => emit('end', { p, offset: o }))
  } finally {
    await consumer.close(true)
  }
}

async function produce (bootstrap, topic, partitions, perCodec, codecs) {
  const baseMs = Date.now() - 3600 * 1000
  for (const codec of codecs) {
    if (codec === 'zstd' && typeof zlib.zstdCompressSync !== 'function') {
      emit('codec-unavailable', { codec, why: `zstd needs zlib.zstdCompressSync (Node.js 22.15+); this is Node.js ${process.version}` })
      continue
    }
    const recs = makeRecords(codec, perCodec, partitions, baseMs)
    const producer = new Producer(options(bootstrap, { acks: -1, compression: codec }))
    try {
      await send(producer, topic, recs)
    } finally {
      await producer.close()
    }
    for (const r of recs) emit('sent', fields(r))
  }
  await readBack(bootstrap, topic, partitions)
}

// Group members: each reads into `consumed`, keeps the next offset to commit.
class Consumed {
  constructor (want) {
    this.want = want
    this.total = 0
    this.next = new Map() // member -> Map(partition -> next offset)
    this.waiters = []
  }

  add (member, m) {
    const r = fromMessage(m)
    emit('got', { ...fields(r), member })
    if (!this.next.has(member)) this.next.set(member, new Map())
    this.next.get(member).set(r.p, r.o + 1)
    this.total++
    if (this.total >= this.want) this.waiters.splice(0).forEach(w => w())
  }

  wait (ms) {
    if (this.total >= this.want) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${this.total} of ${this.want} records`)), ms)
      this.waiters.push(() => { clearTimeout(timer); resolve() })
    })
  }
}

async function startMember (bootstrap, topic, group, name, consumed) {
  const consumer = new Consumer(options(bootstrap, { groupId: group }))
  const stream = await consumer.consume({
    topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false, maxWaitTime: 200, sessionTimeout: 10000, heartbeatInterval: 500
  })
  stream.on('data', m => consumed.add(name, m))
  stream.on('error', err => emit('group-error', { member: name, error: describeError(err) }))
  return { name, consumer, stream }
}

async function commitAndClose (member, topic, consumed) {
  const next = consumed.next.get(member.name) ?? new Map()
  const offsets = [...next.entries()].map(([partition, offset]) => ({ topic, partition, offset: BigInt(offset), leaderEpoch: -1 }))
  let error = null
  try {
    if (offsets.length) await member.consumer.commit({ offsets })
  } catch (err) {
    error = describeError(err)
  }
  emit('committed', { member: member.name, offsets: Object.fromEntries(next), error })
  await member.stream.close()
  await member.consumer.close(true) // leaves the group
}

async function groupShare (bootstrap, topic, group, partitions, n) {
  const consumed = new Consumed(n)
  const members = [await startMember(bootstrap, topic, group, 'a', consumed), await startMember(bootstrap, topic, group, 'b', consumed)]
  // Shared, and unchanged for a second: against Kafka a member may still be
  // rejoining when both views first cover the topic, and records produced
  // then are read by one member and again by the next owner.
  let views = {}
  let steady = 0
  let last = null
  for (let i = 0; ; i++) {
    views = {}
    for (const m of members) {
      views[m.name] = (m.consumer.assignments ?? []).filter(a => a.topic === topic).flatMap(a => a.partitions).sort((x, y) => x - y)
    }
    const seen = Object.values(views).flat().sort((x, y) => x - y)
    const shared = JSON.stringify(seen) === JSON.stringify([...Array(partitions).keys()]) && Object.values(views).every(v => v.length)
    steady = shared && JSON.stringify(views) === last ? steady + 1 : 0
    last = JSON.stringify(views)
    if (steady >= 10) break
    if (i >= 300) throw new Error(`group ${group} never shared: ${JSON.stringify(views)}`)
    await sleep(100)
  }
  emit('stable', { members: views })
  const producer = new Producer(options(bootstrap, { acks: -1 }))
  try {
    await send(producer, topic, groupRecords('share', n, partitions))
  } finally {
    await producer.close()
  }
  await consumed.wait(30000)
  for (const m of members) await commitAndClose(m, topic, consumed)
}

async function groupResume (bootstrap, topic, group, partitions, n) {
  const producer = new Producer(options(bootstrap, { acks: -1 }))
  try {
    await send(producer, topic, groupRecords('resume', n, partitions))
  } finally {
    await producer.close()
  }
  const consumed = new Consumed(n)
  const member = await startMember(bootstrap, topic, group, 'r', consumed)
  await consumed.wait(30000)
  await sleep(1000) // anything read now is one record too many
  await commitAndClose(member, topic, consumed)
}

async function idempotent (bootstrap, topic, partitions, n) {
  const producer = new Producer(options(bootstrap, { idempotent: true }))
  try {
    const recs = groupRecords('idem', n * partitions, partitions)
    await send(producer, topic, recs)
    for (const r of recs) emit('sent', fields(r))
    emit('producer', { producer_id: Number(producer.producerId), epoch: producer.producerEpoch })
  } finally {
    await producer.close()
  }
  await readBack(bootstrap, topic, partitions)
}

// One transactional producer (transactional id) per transaction: the
// client's read_committed filter (Consumer #filterUncommittedMessages in
// 1.35) keeps one aborted range per producer id, so a fetch answer holding
// two aborted transactions of one producer lets all but the last through,
// against Apache Kafka as against runnel.
async function txnProduce (bootstrap, topic, partitions, txnId, plan, perTxn) {
  let i = 0
  for (let t = 0; t < plan.length; t++) {
    const letter = plan[t]
    const producer = new Producer(options(bootstrap, { idempotent: true, transactionalId: `${txnId}-${t}`, acks: -1 }))
    try {
      const txn = await producer.beginTransaction()
      const recs = []
      for (let j = 0; j < perTxn; j++, i++) {
        recs.push({ p: j % partitions, o: -1, key: null, value: Buffer.from(`txn-${t}-${letter}-${i}`), h: [], ts: Date.now(), codec: 'none' })
      }
      await send(txn, topic, recs)
      if (letter === 'c') await txn.commit()
      else await txn.abort()
      for (const r of recs) emit('sent', { p: r.p, o: r.o, value: b64(r.value), commit: letter === 'c' })
    } finally {
      await producer.close()
    }
  }
}

async function main () {
  const [step, bootstrap, ...args] = process.argv.slice(2)
  const timer = setTimeout(() => {
    emit('error', { what: `platformatic ${step}`, error: `still running after ${STEP_TIMEOUT_MS} ms` })
    exit(1)
  }, STEP_TIMEOUT_MS)
  try {
    switch (step) {
      case 'metadata': await metadata(bootstrap, args[0]); break
      case 'admin': await adminStory(bootstrap, args[0]); break
      case 'produce': await produce(bootstrap, args[0], Number(args[1]), Number(args[2]), args[3].split(',')); break
      case 'group-share': await groupShare(bootstrap, args[0], args[1], Number(args[2]), Number(args[3])); break
      case 'group-resume': await groupResume(bootstrap, args[0], args[1], Number(args[2]), Number(args[3])); break
      case 'idempotent': await idempotent(bootstrap, args[0], Number(args[1]), Number(args[2])); break
      case 'txn-produce': await txnProduce(bootstrap, args[0], Number(args[1]), args[2], args[3], Number(args[4])); break
      case 'txn-consume': {
        const counts = args[2].split(',').map(Number)
        await readBack(bootstrap, args[0], counts.length, args[1] === 'read_committed' ? 1 : 0, counts)
        break
      }
      default:
        process.stderr.write(`unknown step ${step}\n`)
        process.exit(2)
    }
  } catch (err) {
    process.stderr.write((err.stack ?? String(err)) + '\n')
    emit('error', { what: `platformatic ${step}`, error: describeError(err) })
    clearTimeout(timer)
    exit(1)
    return
  }
  clearTimeout(timer)
  emit('done')
  exit(0)
}

main()
