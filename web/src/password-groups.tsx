/**
 * The one way a recovery password is shown, in the console's reveal and on the end users'
 * self-service page: 8 numbered groups of 6 digits, large, in a grid (4 across, 2 on a phone).
 */
export function PasswordGroups({ password }: { password: string }) {
  return (
    <div data-testid="recovery-password" className="kw-password" aria-label="Recovery password, 8 groups of 6 digits" role="group">
      {password.split('-').map((g, i) => (
        <div key={i} data-testid="password-group" className="kw-group">
          <span className="kw-group-num">{i + 1}</span>
          <span className="kw-group-digits">{g}</span>
        </div>
      ))}
    </div>
  );
}
