/**
 * The CLI's GraphQL client: JSON requests and GraphQL multipart requests (the spec graphql-upload
 * implements on the server) over fetch, with `Authorization: Bearer <key>` when a key is given.
 */
export interface ApiClientOptions {
  url: string;
  key?: string | undefined;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface UploadFile {
  name: string;
  bytes: Uint8Array<ArrayBuffer>;
  type: string;
}

export class ApiClient {
  private readonly endpoint: string;

  constructor(private readonly options: ApiClientOptions) {
    this.endpoint = `${options.url.replace(/\/+$/, '')}/graphql`;
  }

  private headers(): Record<string, string> {
    return this.options.key ? { authorization: `Bearer ${this.options.key}` } : {};
  }

  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.headers() },
      body: JSON.stringify({ query, variables }),
    });
    return this.read<T>(res);
  }

  /**
   * A multipart request: `files[i]` is bound to the variable path `paths[i]` (e.g.
   * "variables.inputs.0.file"), as the GraphQL multipart request spec describes.
   */
  async upload<T>(query: string, variables: Record<string, unknown>, files: Array<{ path: string; file: UploadFile }>): Promise<T> {
    const form = new FormData();
    form.append('operations', JSON.stringify({ query, variables }));
    form.append('map', JSON.stringify(Object.fromEntries(files.map((f, i) => [String(i), [f.path]]))));
    files.forEach((f, i) => form.append(String(i), new Blob([f.file.bytes], { type: f.file.type }), f.file.name));
    // Apollo's CSRF prevention requires a header a browser form cannot send.
    const res = await fetch(this.endpoint, { method: 'POST', headers: { 'apollo-require-preflight': 'true', ...this.headers() }, body: form });
    return this.read<T>(res);
  }

  private async read<T>(res: Response): Promise<T> {
    const text = await res.text();
    let body: { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new ApiError(`HTTP ${res.status}: ${text.slice(0, 200)}`, `HTTP_${res.status}`);
    }
    const error = body.errors?.[0];
    if (error) throw new ApiError(error.message, error.extensions?.code);
    if (!body.data) throw new ApiError(`HTTP ${res.status} without data`, `HTTP_${res.status}`);
    return body.data;
  }
}
