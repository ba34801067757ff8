/** What every page gets: where to draw, who is signed in, the route's parameters, a status line. */
import type { Me } from './api.ts';

export interface PageContext {
  main: HTMLElement;
  me: Me;
  params: URLSearchParams;
  /** Announces a message in the polite live region (screen readers read it). */
  status(message: string): void;
  /** Changes the route's parameters (in the hash: ids and names, never a token). */
  navigate(params: Record<string, string>): void;
}

/** Called when the page is left (timers). */
export type Cleanup = () => void;
