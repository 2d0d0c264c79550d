import { readFileSync } from 'node:fs';
import type avro from 'avsc';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { EVENT_TYPES, type EventMap, type EventType, type LedgerEvent } from '../domain/events.ts';
import { eventValidator, type EventValidator } from '../domain/validate.ts';

const NAMESPACE = 'io.hongbao.ledger';

export function schemaText(type: EventType): string {
  return readFileSync(new URL(`./${type}.avsc`, import.meta.url), 'utf8');
}

export interface AvroRecordSchema {
  name: string;
  namespace: string;
  doc: string;
  fields: { name: string; type: unknown; doc?: string }[];
}

export function schemaOf(type: EventType): AvroRecordSchema {
  return JSON.parse(schemaText(type)) as AvroRecordSchema;
}

/** TopicRecordNameStrategy: one subject per topic and record, so a topic can carry several event types. */
export function subjectFor(topic: string, type: EventType): string {
  return `${topic}-${NAMESPACE}.${type}`;
}

/**
 * Avro and the registry client, loaded on first use rather than with this module: an API
 * serves before it needs them (infra/kafka-common.ts).
 */
let libraries: Promise<{ avro: typeof avro; registry: typeof import('@kafkajs/confluent-schema-registry') }> | null = null;
function loadLibraries() {
  libraries ??= Promise.all([import('avsc'), import('@kafkajs/confluent-schema-registry')]).then(([a, registry]) => ({ avro: a.default, registry }));
  return libraries;
}

/** Decodes a message's body from `pos`; `offset` is where it stopped, -1 if the buffer ran out. */
type BodyDecoder = (buffer: Buffer, pos: number) => { value: unknown; offset: number };

export class UndecodableMessage extends Error {
  override readonly name = 'UndecodableMessage';
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
  }
}

/**
 * Encodes and decodes ledger events in the Confluent wire format (magic byte, 4-byte
 * schema id, Avro body) against the schema registry. Schemas are registered with BACKWARD
 * compatibility; ids are cached, so the registry is only asked once per schema.
 */
export class EventCodec {
  private registryClient: Promise<SchemaRegistry> | null = null;
  private avro: typeof avro | null = null;
  private readonly writerIds = new Map<string, number>();
  /** By schema id: the event type and its Avro type, or why messages under it are undecodable. */
  private readonly readers = new Map<number, { type: EventType; decode: BodyDecoder; invalid: EventValidator } | { refused: string; retry?: true }>();
  private readonly skip: readonly string[];

  /**
   * `skip`: fields to leave out of decoded events (a replay's codec leaves out the audit
   * trail, AUDIT_TRAIL_FIELDS, which no rule reads: decoding skips their bytes instead of
   * making strings of them).
   */
  constructor(private readonly registryUrl: string, opts: { skip?: readonly string[] } = {}) {
    this.skip = opts.skip ?? [];
  }

  private registry(): Promise<SchemaRegistry> {
    this.registryClient ??= loadLibraries().then(({ avro: a, registry }) => {
      this.avro = a;
      return new registry.SchemaRegistry({ host: this.registryUrl, retry: { retries: 3 } });
    });
    return this.registryClient;
  }

  /** Registers (or finds) the schema of each event type under its topic's subject. */
  async registerAll(topicOf: (type: EventType) => string): Promise<void> {
    for (const type of EVENT_TYPES) await this.register(topicOf(type), type);
  }

  async register(topic: string, type: EventType): Promise<number> {
    const subject = subjectFor(topic, type);
    const cached = this.writerIds.get(subject);
    if (cached !== undefined) return cached;
    const { registry } = await loadLibraries();
    const { id } = await (await this.registry()).register(
      { type: registry.SchemaType.AVRO, schema: schemaText(type) },
      { subject, compatibility: registry.COMPATIBILITY.BACKWARD },
    );
    this.writerIds.set(subject, id);
    return id;
  }

  async encode<K extends EventType>(topic: string, type: K, data: EventMap[K]): Promise<Buffer> {
    const id = this.writerIds.get(subjectFor(topic, type)) ?? (await this.register(topic, type));
    return (await this.registry()).encode(id, data);
  }

  /**
   * Decodes a message; anything that is not a known event in the wire format, or that breaks
   * the ledger's rules for events (domain/validate.ts), is UndecodableMessage. A registry
   * outage is thrown as it is: it is not the message's fault, and the caller retries.
   */
  async decode(value: Buffer | null): Promise<LedgerEvent> {
    await this.prepare([value]);
    return this.decodeLoaded(value);
  }

  /**
   * Fetches the schemas of these messages that are not cached yet, so that decodeLoaded can
   * decode them without waiting: a replay prepares a fetched batch once and decodes its
   * messages synchronously, instead of two promise round trips per message.
   */
  async prepare(values: readonly (Buffer | null)[]): Promise<void> {
    // Each id is asked at most once per call: a batch full of messages under an unknown id
    // costs one registry request, not one per message.
    const asked = new Set<number>();
    const registry = await this.registry();
    for (const value of values) {
      if (!value || value.length < 6 || value[0] !== 0) continue;
      const id = value.readUInt32BE(1);
      const known = this.readers.get(id);
      if ((known && !('retry' in known)) || asked.has(id)) continue;
      asked.add(id);
      try {
        const schema = (await registry.getSchema(id)) as unknown as { name?: string; schema(): object };
        const name = (schema.name ?? '').replace(`${NAMESPACE}.`, '');
        this.readers.set(id, (EVENT_TYPES as readonly string[]).includes(name)
          ? this.reader(name as EventType, schema.schema() as AvroRecordSchema)
          : { refused: `schema ${id} is not a ledger event (${schema.name})` });
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status !== undefined && status >= 500) throw err;
        if (err instanceof Error && /ECONNREFUSED|ETIMEDOUT|socket hang up/.test(err.message)) throw err;
        // Refused for now; asked again with the next message under this id.
        this.readers.set(id, { refused: `cannot decode with schema ${id}: ${(err as Error).message}`, retry: true });
      }
    }
  }

  /** How to decode and check an event of this type written with this schema. */
  private reader(type: EventType, writerSchema: AvroRecordSchema): { type: EventType; decode: BodyDecoder; invalid: EventValidator } {
    // Loaded by prepare(), the only caller, before it asks the registry.
    const avsc = this.avro!;
    const writer = avsc.Type.forSchema(writerSchema as avro.Schema);
    const kept = writerSchema.fields.filter((f) => !this.skip.includes(f.name));
    const invalid = eventValidator(type, kept.map((f) => f.name));
    if (kept.length === writerSchema.fields.length) return { type, decode: (buf, pos) => writer.decode(buf, pos), invalid };
    // Avro schema resolution: a reader schema without the skipped fields reads past their bytes.
    const reader = avsc.Type.forSchema({ ...writerSchema, fields: kept } as avro.Schema);
    const resolver = reader.createResolver(writer);
    return { type, decode: (buf, pos) => reader.decode(buf, pos, resolver), invalid };
  }

  /** Decodes a message whose schema was prepared (or was never going to load: it is then UndecodableMessage). */
  decodeLoaded(value: Buffer | null): LedgerEvent {
    if (!value || value.length < 6 || value[0] !== 0) throw new UndecodableMessage('not in the Confluent wire format');
    const id = value.readUInt32BE(1);
    const reader = this.readers.get(id);
    if (!reader) throw new Error(`schema ${id} was not prepared before decoding`);
    if ('refused' in reader) throw new UndecodableMessage(reader.refused);
    let decoded: { value: unknown; offset: number };
    try {
      // From the body's offset, rather than a subarray of it: one Buffer fewer per message.
      decoded = reader.decode(value, 5);
    } catch (err) {
      throw new UndecodableMessage(`cannot decode with schema ${id}: ${(err as Error).message}`, err);
    }
    if (decoded.offset !== value.length) throw new UndecodableMessage(`cannot decode with schema ${id}: ${decoded.offset < 0 ? 'truncated' : 'trailing data'}`);
    const event = { type: reader.type, data: decoded.value } as LedgerEvent;
    const invalid = reader.invalid(event.data);
    if (invalid) throw new UndecodableMessage(`${reader.type} is not a valid ledger event: ${invalid}`);
    return event;
  }
}
