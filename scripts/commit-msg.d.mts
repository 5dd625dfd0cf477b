/** Types of scripts/commit-msg.mjs, for the tests. */
export declare const MAX_SUBJECT: number;
export declare function cleanMessage(text: string): string[];
export declare function checkMessage(text: string): string[];
