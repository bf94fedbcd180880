/** Alerts as the overview and the management page list them. */
import { Badge } from '../ui';

/** An alert from `GET /admin/alerts`. */
export interface Alert {
  id: string;
  detector: string;
  severity: string;
  subject: { kind: string; id: string };
  summary: string;
  firstSeen: string | null;
  lastSeen: string | null;
  count: number;
}

/** The headings of the cells AlertCells makes. */
export const ALERT_COLUMNS = ['Severity', 'Detector', 'Subject', 'Summary', 'Count'] as const;

/** The cells an alert's row starts with: severity, detector, subject, summary and count. */
export function AlertCells({ alert }: { alert: Alert }) {
  return (
    <>
      <td>
        <Badge value={alert.severity} />
      </td>
      <td>{alert.detector}</td>
      <td class="mono">
        {alert.subject.kind}:{alert.subject.id}
      </td>
      <td>{alert.summary}</td>
      <td class="num">{alert.count}</td>
    </>
  );
}
