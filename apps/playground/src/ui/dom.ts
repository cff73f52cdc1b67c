/** Typed access to the page's elements (ids from index.html). */

/** The element with `id`, checked to be of `type`; a missing element is a bug in index.html. */
export function byId<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`index.html lacks a <${type.name}> with id "${id}"`);
  return el;
}

/** Creates an element with text. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}
