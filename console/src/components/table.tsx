/** A table of rows under one header row, with a line of its own when there are no rows. */
import type { ComponentChildren, TableHTMLAttributes } from 'preact';

export function DataTable<T>({
  columns,
  rows,
  row,
  empty,
  ...attributes
}: Omit<TableHTMLAttributes<HTMLTableElement>, 'rows'> & {
  /** The headings; `''` heads a column without a heading, `false` leaves the column out. */
  columns: readonly (string | false)[];
  /** The rows' data; none yet while it loads. */
  rows: readonly T[] | undefined;
  row: (item: T, index: number) => ComponentChildren;
  /** Shown in place of the rows when there are none. */
  empty?: string;
}) {
  const headings = columns.filter((c): c is string => c !== false);
  return (
    <table {...attributes}>
      <thead>
        <tr>
          {headings.map((h, i) => (
            <th key={i}>{h === '' ? null : h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {empty !== undefined && rows?.length === 0 && (
          <tr>
            <td colSpan={headings.length} class="muted">
              {empty}
            </td>
          </tr>
        )}
        {rows?.map(row)}
      </tbody>
    </table>
  );
}
