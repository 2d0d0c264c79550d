import { readFileSync } from 'node:fs';
import { SchemaRegistry, SchemaType, COMPATIBILITY } from '@kafkajs/confluent-schema-registry';
import { EVENT_TYPES, type EventMap, type EventType, type LedgerEvent } from '../domain/events.ts';
import { invalidEvent } from '../domain/validate.ts';

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
  private readonly registry: SchemaRegistry;
  private readonly writerIds = new Map<string, number>();
  private readonly typeById = new Map<number, EventType>();

  constructor(registryUrl: string) {
    this.registry = new SchemaRegistry({ host: registryUrl, retry: { retries: 3 } });
  }

  /** Registers (or finds) the schema of each event type under its topic's subject. */
  async registerAll(topicOf: (type: EventType) => string): Promise<void> {
    for (const type of EVENT_TYPES) await this.register(topicOf(type), type);
  }

  async register(topic: string, type: EventType): Promise<number> {
    const subject = subjectFor(topic, type);
    const cached = this.writerIds.get(subject);
    if (cached !== undefined) return cached;
    const { id } = await this.registry.register(
      { type: SchemaType.AVRO, schema: schemaText(type) },
      { subject, compatibility: COMPATIBILITY.BACKWARD },
    );
    this.writerIds.set(subject, id);
    this.typeById.set(id, type);
    return id;
  }

  async encode<K extends EventType>(topic: string, type: K, data: EventMap[K]): Promise<Buffer> {
    const id = this.writerIds.get(subjectFor(topic, type)) ?? (await this.register(topic, type));
    return this.registry.encode(id, data);
  }

  /**
   * Decodes a message; anything that is not a known event in the wire format, or that breaks
   * the ledger's rules for events (domain/validate.ts), is UndecodableMessage.
   */
  async decode(value: Buffer | null): Promise<LedgerEvent> {
    if (!value || value.length < 6 || value[0] !== 0) throw new UndecodableMessage('not in the Confluent wire format');
    const id = value.readUInt32BE(1);
    let type = this.typeById.get(id);
    try {
      if (!type) {
        const schema = (await this.registry.getSchema(id)) as { name?: string };
        const name = (schema.name ?? '').replace(`${NAMESPACE}.`, '');
        if (!(EVENT_TYPES as readonly string[]).includes(name)) throw new UndecodableMessage(`schema ${id} is not a ledger event (${schema.name})`);
        type = name as EventType;
        this.typeById.set(id, type);
      }
      const event = { type, data: await this.registry.decode(value) } as LedgerEvent;
      const invalid = invalidEvent(event);
      if (invalid) throw new UndecodableMessage(`${type} is not a valid ledger event: ${invalid}`);
      return event;
    } catch (err) {
      if (err instanceof UndecodableMessage) throw err;
      const status = (err as { status?: number }).status;
      // A registry outage is not the message's fault: let the caller retry instead of dead-lettering.
      if (status !== undefined && status >= 500) throw err;
      if (err instanceof Error && /ECONNREFUSED|ETIMEDOUT|socket hang up/.test(err.message)) throw err;
      throw new UndecodableMessage(`cannot decode with schema ${id}: ${(err as Error).message}`, err);
    }
  }
}
