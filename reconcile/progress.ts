/**
 * A progress bar with rate and ETA for a terminal (stderr). Off when stderr is not a
 * terminal, so logs and CI output stay clean.
 */
export function progressBar(stream: NodeJS.WriteStream = process.stderr, label = 'audit'): { update(done: number, total: number): void; end(): void } {
  if (!stream.isTTY) return { update() {}, end() {} };
  const started = Date.now();
  let last = 0;
  const draw = (done: number, total: number) => {
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = done / secs;
    const share = total > 0 ? Math.min(1, done / total) : 1;
    const width = 28;
    const filled = Math.round(share * width);
    const eta = rate > 0 && total > done ? `${Math.ceil((total - done) / rate)}s` : '0s';
    stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% `
      + `${done.toLocaleString('en')}/${total.toLocaleString('en')} events  ${Math.round(rate).toLocaleString('en')}/s  ETA ${eta}   `);
  };
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      draw(done, total);
    },
    end() {
      stream.write('\n');
    },
  };
}
