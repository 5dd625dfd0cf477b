/**
 * PostgreSQL's English stop words (its Snowball list, share/tsearch_data/english.stop, 127 words).
 * PostgreSQL drops them from queries itself; SQLite's FTS5 does not, so keyword queries drop them
 * here for both stores and "the red circle" means the same everywhere.
 */
const STOP_WORDS = new Set([
  'i', 'me', 'my', 'myself', 'we', 'our', 'ours', 'ourselves', 'you', 'your', 'yours', 'yourself',
  'yourselves', 'he', 'him', 'his', 'himself', 'she', 'her', 'hers', 'herself', 'it', 'its',
  'itself', 'they', 'them', 'their', 'theirs', 'themselves', 'what', 'which', 'who', 'whom',
  'this', 'that', 'these', 'those', 'am', 'is', 'are', 'was', 'were', 'be', 'been', 'being',
  'have', 'has', 'had', 'having', 'do', 'does', 'did', 'doing', 'a', 'an', 'the', 'and', 'but',
  'if', 'or', 'because', 'as', 'until', 'while', 'of', 'at', 'by', 'for', 'with', 'about',
  'against', 'between', 'into', 'through', 'during', 'before', 'after', 'above', 'below', 'to',
  'from', 'up', 'down', 'in', 'out', 'on', 'off', 'over', 'under', 'again', 'further', 'then',
  'once', 'here', 'there', 'when', 'where', 'why', 'how', 'all', 'any', 'both', 'each', 'few',
  'more', 'most', 'other', 'some', 'such', 'no', 'nor', 'not', 'only', 'own', 'same', 'so', 'than',
  'too', 'very', 's', 't', 'can', 'will', 'just', 'don', 'should', 'now',
]);

/** Most terms a keyword query uses; more would only narrow an AND query to nothing. */
export const MAX_KEYWORD_TERMS = 32;

/**
 * The words of a keyword query: letters and digits (Unicode), lower-cased, stop words and
 * repeats dropped. Punctuation separates words, as both stores' tokenizers do ("blue-green" is
 * "blue" and "green"). Every term must occur in the caption or the alt text (AND); the stores
 * stem them (English), so "circles" finds "circle".
 */
export function keywordTerms(text: string): string[] {
  const words = text.toLowerCase().normalize('NFKC').split(/[^\p{L}\p{N}]+/u);
  return [...new Set(words.filter((w) => w.length > 0 && !STOP_WORDS.has(w)))].slice(0, MAX_KEYWORD_TERMS);
}
