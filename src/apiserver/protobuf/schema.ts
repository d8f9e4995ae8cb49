/**
 * One field of a Kubernetes protobuf message, as scripts/gen-protobuf.mjs writes them into
 * messages.ts from the protobuf tags of upstream's Go types (ADR 0021).
 */
export interface FieldDef {
  /** The JSON name ("" for an embedded struct whose fields are inlined). */
  name: string;
  /**
   * A scalar (string bytes int32 int64 bool double float), a message name, or a type decoded
   * by hand as upstream marshals it by hand: Time, MicroTime, Duration, Quantity, IntOrString,
   * RawJSON (RawExtension, FieldsV1) and StringList (a named []string such as ExtraValue).
   * Absent on maps.
   */
  type?: string;
  /** A map's value type (keys are strings); the field is then a map. */
  map?: string;
  repeated?: true;
  /** A zero value stays in JSON: a pointer, or a field without omitempty. */
  keepZero?: true;
  /** The message's fields are merged into the parent's, like an embedded Go struct. */
  inline?: true;
}
