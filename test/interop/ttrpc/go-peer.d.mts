export declare const goBin: string;
export declare const binDir: string;
export declare const gocode: Record<'1.1' | '1.2', string[]>;
export declare function goMissing(version: '1.1' | '1.2'): string | undefined;
export declare function buildPeer(version: '1.1' | '1.2'): Promise<string>;
export declare function startGoServer(bin: string, socket: string): Promise<{ pid: number; stop(): Promise<void> }>;
export declare function runGoPeer(bin: string, args: string[], timeoutMs?: number): Promise<string>;
