/** A bad export request: names the option (`card.licence`, `pairs[1]`, ...), never a report's text. */
export class DatasetExportError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'DatasetExportError';
  }
}

/** A bundle that cannot be imported: names the object (`dataset.json`, `shard-000001.tar`, a sample key), never a report's text. */
export class DatasetBundleError extends Error {
  constructor(
    readonly object: string,
    message: string,
  ) {
    super(`${object}: ${message}`);
    this.name = 'DatasetBundleError';
  }
}
