/**
 * Forms of the console: a form that stays on the page when submitted, and
 * labelled controls bound to one state object of strings, each control
 * reading and writing the value under its `name`.
 */
import type { ComponentChildren, FormHTMLAttributes } from 'preact';
import { useState } from 'preact/hooks';

/** A form's values and the setter that replaces them. */
export interface FormState<F> {
  values: F;
  set: (next: F) => void;
}

export function useForm<F>(initial: F): FormState<F> {
  const [values, set] = useState(initial);
  return { values, set };
}

type Strings<F> = { [K in keyof F]: string };

/** A `<form>` whose submit runs `onSubmit` instead of loading a page. */
export function Form({
  onSubmit,
  children,
  ...attributes
}: Omit<FormHTMLAttributes<HTMLFormElement>, 'onSubmit'> & { onSubmit: () => void }) {
  return (
    <form
      {...attributes}
      onSubmit={(ev) => {
        ev.preventDefault();
        onSubmit();
      }}
    >
      {children}
    </form>
  );
}

export function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the control comes as children
    <label>
      {label}
      {children}
    </label>
  );
}

const val = (ev: Event) => (ev.target as HTMLInputElement).value;

/** A labelled text input for `form.values[name]`. */
export function TextField<F extends Strings<F>>({
  form,
  name,
  label,
  ...attributes
}: {
  form: FormState<F>;
  name: keyof F & string;
  label: string;
  required?: boolean;
  placeholder?: string;
}) {
  return (
    <Field label={label}>
      <input
        name={name}
        {...attributes}
        value={form.values[name] ?? ''}
        onInput={(ev) => form.set({ ...form.values, [name]: val(ev) })}
      />
    </Field>
  );
}

/** An option's value, or its value and the text shown for it. */
export type Option = string | readonly [value: string, text: string];

/** A labelled select for `form.values[name]`. */
export function SelectField<F extends Strings<F>>({
  form,
  name,
  label,
  options,
}: {
  form: FormState<F>;
  name: keyof F & string;
  label: string;
  options: readonly Option[];
}) {
  return (
    <Field label={label}>
      <select
        name={name}
        value={form.values[name]}
        onChange={(ev) => form.set({ ...form.values, [name]: val(ev) })}
      >
        {options.map((o) => {
          const [value, text] = typeof o === 'string' ? [o, o] : o;
          return (
            <option key={value} value={value}>
              {text}
            </option>
          );
        })}
      </select>
    </Field>
  );
}
